// Reading rollups back: sealed chunks decoded, with the open (not yet
// sealed) buckets over them, and the same exposed to SQL as the eponymous
// virtual table `rollups`:
//
//   SELECT * FROM rollups WHERE resolution = '5m' AND kind = 'vder'
//     AND id = 'north' AND bucket_ms >= 1767225600000;
//
// columns: resolution ('5m', '1h', '1d'), kind ('der', 'vder'), id,
// bucket_ms, samples, availability, min_kw, max_kw, mean_kw, export_kwh,
// import_kwh, soc_pct, capacity_kw. Constraints on resolution, kind, id and
// ranges of bucket_ms are used to seek; rows come ordered by those four.
#ifndef DERMS_CLOUD_AGGREGATOR_STORAGE_ROLLUP_READER_H_
#define DERMS_CLOUD_AGGREGATOR_STORAGE_ROLLUP_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cloud_aggregator/history/rollup.h"
#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace derms::storage {

// Not thread-safe: one per connection and thread.
class RollupReader {
 public:
  explicit RollupReader(sqlite3* db);
  ~RollupReader();
  RollupReader(const RollupReader&) = delete;
  RollupReader& operator=(const RollupReader&) = delete;

  // The buckets of one series with start in [from_ms, to_ms), in order.
  StatusOr<std::vector<history::Bucket>> Series(int64_t resolution_s, const std::string& kind,
                                                const std::string& id, int64_t from_ms,
                                                int64_t to_ms);

 private:
  struct Statements;
  std::unique_ptr<Statements> statements_;
};

// Opens `db_path` read-only and reads one series, as RollupReader::Series.
// An error names the database when it cannot be opened, and the series when
// the database holds no rollups of it at all (with the ids it does hold).
StatusOr<std::vector<history::Bucket>> ReadSeries(const std::string& db_path, int64_t resolution_s,
                                                  const std::string& kind, const std::string& id,
                                                  int64_t from_ms, int64_t to_ms);

// The bucket in columns first.. of a row shaped like rollups_open's from
// bucket_ms on (bucket_ms, samples, availability, min_kw, max_kw, mean_kw,
// export_kwh, import_kwh, soc_pct, capacity_kw).
history::Bucket BucketFromRow(sqlite3_stmt* row, int first);

// Registers the `rollups` virtual table on `db` (every connection that
// queries it needs this: the aggregator's, dermsctl query's).
Status RegisterRollups(sqlite3* db);

}  // namespace derms::storage

#endif  // DERMS_CLOUD_AGGREGATOR_STORAGE_ROLLUP_READER_H_
