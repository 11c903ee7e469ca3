// Compressed chunks of rollup buckets: up to kChunkBuckets consecutive
// buckets of one series and one resolution in one blob, so five years of
// 5-minute rollups for a thousand DERs fit in a few gigabytes and stay
// queryable through SQL (storage/rollup_vtab). Pure logic, no storage.
//
// Values are stored rounded to the quanta below (far finer than any meter);
// Decode returns each within half a quantum of what was encoded.
#ifndef DERMS_CLOUD_AGGREGATOR_HISTORY_CHUNK_CODEC_H_
#define DERMS_CLOUD_AGGREGATOR_HISTORY_CHUNK_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cloud_aggregator/history/rollup.h"
#include "common/status.h"

namespace derms::history {

// Buckets per chunk: a chunk of 5-minute buckets is one UTC day.
constexpr int64_t kChunkBuckets = 288;
// How much time a chunk of `resolution_s` buckets spans.
inline int64_t ChunkSpanMs(int64_t resolution_s) { return resolution_s * 1000 * kChunkBuckets; }
// The start of the chunk holding the bucket at `bucket_ms`.
inline int64_t ChunkStart(int64_t bucket_ms, int64_t resolution_s) {
  return BucketStart(bucket_ms, resolution_s * kChunkBuckets);
}

constexpr double kPowerQuantumKw = 0.001;     // min_kw, max_kw, mean_kw, capacity_kw: 1 W
constexpr double kEnergyQuantumKwh = 0.0001;  // export_kwh, import_kwh: 0.1 Wh
constexpr double kSocQuantumPct = 0.01;
constexpr double kAvailabilityQuantum = 0.0001;

// Encodes `buckets` (start_ms strictly increasing, every one a bucket start of
// `resolution_s` inside the chunk of the first, at most kChunkBuckets). An
// error names the bucket and the rule when a value cannot be stored (not
// finite, or beyond what the encoding holds).
StatusOr<std::string> EncodeChunk(const std::vector<Bucket>& buckets, int64_t resolution_s);
// The buckets of a blob made by EncodeChunk; an error if it is damaged.
StatusOr<std::vector<Bucket>> DecodeChunk(std::string_view blob, int64_t resolution_s);

}  // namespace derms::history

#endif  // DERMS_CLOUD_AGGREGATOR_HISTORY_CHUNK_CODEC_H_
