// Telemetry rollups: the summary of one series (a DER or a virtual DER) over
// one time bucket of 5 minutes, an hour or a day. Pure logic, no storage.
//
// Definitions (the README's schema section says the same):
// - Each raw sample stands for `w = min(interval_s, bucket_s / n)` seconds,
//   where `interval_s` is the DER's nominal telemetry interval (from its
//   birth) and `n` the samples in the bucket: a DER that sends more often
//   than it said never counts more than the whole bucket.
// - availability: n * w / bucket_s, in [0, 1].
// - min_kw, max_kw, mean_kw: over the samples present.
// - export_kwh / import_kwh: sum of max(p, 0) * w / 3600 and max(-p, 0) * w / 3600.
// - soc_pct: mean over the samples that carry one; absent if none does.
// - capacity_kw: sum of available_discharge_kw * w / bucket_s: the average
//   power the DER could have delivered over the whole bucket, time it was not
//   reporting counted as zero.
// Hourly and daily buckets are combined from the finer ones (Combine); for a
// 5-minute bucket that is not capped, the result equals the same definitions
// applied to the raw samples of the hour or day.
// A virtual DER's bucket is the sum of its members' buckets at the same
// resolution (SumMembers).
#ifndef DERMS_CLOUD_AGGREGATOR_HISTORY_ROLLUP_H_
#define DERMS_CLOUD_AGGREGATOR_HISTORY_ROLLUP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace derms::history {

// The three stored resolutions, in seconds.
constexpr int64_t k5Min = 300;
constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 86400;
// "5m", "1h", "1d"; empty for anything else.
std::string ResolutionName(int64_t resolution_s);
// 300, 3600, 86400 for "5m", "1h", "1d" (also "300", "3600", "86400");
// 0 for anything else.
int64_t ParseResolution(const std::string& name);

// The start of the bucket of `resolution_s` holding `t_ms` (UTC-aligned).
inline int64_t BucketStart(int64_t t_ms, int64_t resolution_s) {
  int64_t r = resolution_s * 1000;
  int64_t q = t_ms / r;
  if (t_ms % r < 0) --q;
  return q * r;
}

// One raw telemetry sample, as much of it as rollups need.
struct Sample {
  int64_t timestamp_ms = 0;
  double active_power_kw = 0;
  std::optional<double> soc_pct;
  // What the DER said it could deliver; the stored series falls back to the
  // DER's nameplate max_discharge_kw when a sample did not say.
  double available_discharge_kw = 0;
};

struct Bucket {
  int64_t start_ms = 0;
  uint32_t samples = 0;
  double availability = 0;
  double min_kw = 0;
  double max_kw = 0;
  double mean_kw = 0;
  double export_kwh = 0;
  double import_kwh = 0;
  std::optional<double> soc_pct;
  double capacity_kw = 0;
};

// The bucket starting at `start_ms` from its samples (any order; all must lie
// in [start_ms, start_ms + resolution_s * 1000)). REQUIRES: samples not empty,
// interval_s > 0.
Bucket Rollup(const std::vector<Sample>& samples, int64_t start_ms, int64_t resolution_s,
              double interval_s);

// The coarse bucket starting at `start_ms` of `resolution_s` from the finer
// buckets of `fine_resolution_s` inside it (any order, absent ones had no
// samples). REQUIRES: fine not empty, every fine bucket has samples.
Bucket Combine(const std::vector<Bucket>& fine, int64_t start_ms, int64_t resolution_s,
               int64_t fine_resolution_s);

// A virtual DER's bucket from those of the members that have one;
// `members_total` counts all members (those without a bucket count as
// unavailable). min_kw and max_kw are the sums of the members' extremes:
// bounds of the total, which may not have been reached at one instant.
// REQUIRES: members not empty, members_total >= members.size().
Bucket SumMembers(const std::vector<Bucket>& members, int64_t start_ms, size_t members_total);

}  // namespace derms::history

#endif  // DERMS_CLOUD_AGGREGATOR_HISTORY_ROLLUP_H_
