// The history jobs: roll raw telemetry up into 5-minute, hourly and daily
// buckets per DER and per virtual DER, seal finished chunks into compressed
// blobs, and expire what is past its retention. They run on a thread of their
// own with a read-only connection (WAL: readers never block the writer) and
// hand every write to the Store's writer in small transactions, so ingest
// never waits for them beyond one such transaction.
//
// Late samples: a sample whose 5-minute bucket was already rolled up is
// marked by the writer (table rollup_late) in the transaction that stores it,
// and the next pass redoes that bucket and everything above it.
#ifndef DERMS_CLOUD_AGGREGATOR_STORAGE_HISTORY_JOBS_H_
#define DERMS_CLOUD_AGGREGATOR_STORAGE_HISTORY_JOBS_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "cloud_aggregator/storage/store.h"
#include "common/status.h"

struct sqlite3;

namespace derms::storage {

struct HistoryOptions {
  // Raw telemetry is kept this many days (0: forever).
  int64_t raw_days = 90;
  // Rollups are kept this many days per resolution (0: forever). Whole
  // chunks expire: a day of 5-minute buckets, 12 days of hourly, 288 of daily.
  int64_t rollup_5m_days = 1826;
  int64_t rollup_1h_days = 0;
  int64_t rollup_1d_days = 0;
  // Wall seconds between passes (0: no thread; call RunOnce).
  int64_t interval_s = 10;
  // A 5-minute bucket is rolled up once it ended this long ago (by the
  // aggregator's clock); samples arriving later take the late path.
  int64_t grace_s = 30;
  // A chunk of buckets is sealed (compressed) once it ended this long ago.
  int64_t seal_after_s = 3600;
  // Telemetry interval assumed for a DER whose birth gave none (seconds).
  double default_interval_s = 60;
  // Most hours of raw telemetry rolled up in one pass: a long backlog (an
  // old database, a long outage) is caught up over several passes.
  int64_t max_hours_per_pass = 24;
};

struct HistoryCounters {
  std::atomic<uint64_t> passes{0};
  std::atomic<uint64_t> buckets{0};       // buckets written (all resolutions, DERs and vDERs)
  std::atomic<uint64_t> late_buckets{0};  // 5-minute buckets redone for late samples
  std::atomic<uint64_t> chunks_sealed{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<int64_t> watermark_ms{0};  // 5-minute buckets before this are rolled up
  std::atomic<int64_t> last_pass_ms{0};  // wall duration of the last pass
};

class HistoryJobs {
 public:
  // Opens the jobs' read connection on the store's database and, when
  // `options.interval_s` > 0, starts the thread calling RunOnce(now_ms()).
  static StatusOr<std::unique_ptr<HistoryJobs>> Start(Store* store, const HistoryOptions& options,
                                                      std::function<int64_t()> now_ms);
  // Stops the thread (a pass in progress finishes first).
  ~HistoryJobs();

  // One pass at `now_ms`. Thread-safe against the jobs' own thread (passes
  // never overlap). Returns the first error met (the pass goes on past it).
  Status RunOnce(int64_t now_ms);
  const HistoryCounters& counters() const { return counters_; }

 private:
  HistoryJobs(Store* store, const HistoryOptions& options, std::function<int64_t()> now_ms,
              sqlite3* db);
  void Loop();
  // The steps of a pass, in order (history_jobs.cc).
  struct Pass;
  // 5-minute buckets from raw samples: the new ones and those late samples
  // landed in. Returns where raw samples are rolled up to.
  int64_t RollRaw(Pass& pass, int64_t now_ms);
  // Hourly from 5-minute, daily from hourly, for the DER buckets touched.
  void CombineUp(Pass& pass);
  // Virtual DERs: each bucket a member touched, summed over all members.
  void SumVders(Pass& pass);
  // Chunks that ended `seal_after_s` ago, compressed.
  void Seal(Pass& pass, int64_t now_ms);
  // Retention, in slices.
  void Expire(Pass& pass, int64_t now_ms, int64_t rolled_up_to);
  // Flushes the store; false (the error kept, the pass stopped) while the
  // store is failing.
  bool Committed(Pass& pass);

  Store* const store_;
  const HistoryOptions options_;
  const std::function<int64_t()> now_ms_;
  HistoryCounters counters_;
  std::mutex pass_mutex_;  // one pass at a time; guards db_ and what hangs on it
  sqlite3* db_;            // read-only, GUARDED_BY(pass_mutex_)
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // GUARDED_BY(stop_mutex_)
  std::thread thread_;
};

}  // namespace derms::storage

#endif  // DERMS_CLOUD_AGGREGATOR_STORAGE_HISTORY_JOBS_H_
