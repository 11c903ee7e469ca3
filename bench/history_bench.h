// The telemetry history benchmarks, as derms-bench subcommands (run by
// ./bench/run.sh history). Each prints one JSON line with both sides of its
// comparison, measured in the same process:
//
//   store-insert              rows/s through Store::Add + Flush, beside the floor: a bare
//                             batched INSERT loop into the same schema, runs alternating
//   store-insert-under-query  the same ingest while another thread runs long analytical
//                             queries on a read-only connection, beside the ingest alone
//   history-size              bytes per stored rollup bucket (and per raw sample) for a
//                             simulated fleet, projected to five years of 1,000 DERs
//
// Not thread-safe; built and run from derms-bench's main thread only.
#ifndef DERMS_BENCH_HISTORY_BENCH_H_
#define DERMS_BENCH_HISTORY_BENCH_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace derms::bench {

struct HistoryBenchOptions {
  // Where the databases go (replaced; removed when a benchmark ends unless `keep`).
  std::string dir = "./var/bench/history";
  bool keep = false;
  // DERs in the simulated fleet.
  int ders = 1000;
  // Telemetry records ingested per timed run: store-insert, store-insert-under-query.
  uint64_t records = 500000;
  uint64_t query_records = 300000;
  // Runs of each side, alternating (the floor or the quiet side first).
  int repeats = 3;
  // Rows already in the telemetry table before the ingest under queries.
  uint64_t prefill = 2000000;
  // Days of 1-minute telemetry rolled up and stored (history-size).
  int days = 14;
  // Of which the first `raw_days` are also stored as raw rows (history-size).
  int raw_days = 1;
  // Meter noise on active power: standard deviation, a share of the rating.
  double noise = 0.01;
  // Samples lost at random (on top of outages of 5 to 120 minutes, 0.1 a day per DER).
  double missing = 0.02;
  // What-if: PRAGMAs run on every SQLite connection the process opens (the
  // Store's, the floor's, the readers'), e.g. "PRAGMA cache_size = -65536". Empty:
  // SQLite's defaults, as the aggregator runs.
  std::string sqlite_pragmas;
  // store-insert-under-query's reader: "queries" (long analytical queries,
  // back to back), "snapshot" (a read transaction held open, renewed every
  // 500 ms, no CPU: WAL checkpoint starvation alone) or "cpu" (a spinning
  // thread, no SQLite: CPU contention alone).
  std::string reader = "queries";
  // What-if for store-insert-under-query: a TRUNCATE checkpoint after any
  // commit that leaves more than this many MB in the WAL, from a WAL hook on
  // every connection: a way the Store could bound the WAL that readers keep
  // from being reset (0: none, as the Store does now). With queries back to
  // back it waits out the busy timeout, holding the writer.
  int64_t wal_limit_mb = 0;
};

class HistoryBenches {
 public:
  // Adds the three subcommands to `app`. REQUIRES: `app` outlives this.
  explicit HistoryBenches(CLI::App* app);
  // After parsing: whether one of them was chosen.
  bool chosen() const;
  // Runs the chosen one; the process's exit code.
  int Run() const;

 private:
  HistoryBenchOptions options_;
  CLI::App* insert_ = nullptr;
  CLI::App* under_query_ = nullptr;
  CLI::App* size_ = nullptr;
};

}  // namespace derms::bench

#endif  // DERMS_BENCH_HISTORY_BENCH_H_
