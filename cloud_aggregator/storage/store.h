// The aggregator's SQLite history: every accepted birth, status change,
// telemetry sample, control, response, grid status and dispatch run.
// Writes are queued and committed in batches on the store's own writer
// thread (WAL mode), so ingest never waits on the disk. Telemetry is keyed
// by (der_id, seq): a redelivered sample is stored once.
//
// Storage failures (leveldb's background error, db/db_impl.cc): a batch
// that fails on the disk's account (full, I/O error, read-only, locked,
// corrupt) is rolled back, kept in memory and retried whole, with backoff,
// until it commits. While it fails the store is in an error state that
// health() shows, Flush() returns, and no barrier queued behind the batch
// runs: the inbox journal is never released for a rolled-back record.
#ifndef DERMS_CLOUD_AGGREGATOR_STORAGE_STORE_H_
#define DERMS_CLOUD_AGGREGATOR_STORAGE_STORE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "cloud_aggregator/storage/backup.h"
#include "cloud_aggregator/storage/records.h"
#include "common/blocking_queue.h"
#include "common/status.h"
#include "derms/v1/derms.pb.h"

struct sqlite3;
struct sqlite3_stmt;

namespace derms::storage {

struct StoreOptions {
  std::string path = "./var/derms.db";
  // Most records in one transaction.
  size_t batch_max = 5000;
  // How long a transaction gathers records before it commits (unless it is
  // full first). Small transactions rewrite the same b-tree pages over and
  // over; this bounds how stale the database may be.
  std::chrono::milliseconds gather{100};
  // Queue bound: when the disk falls this far behind, producers wait. The
  // last resort: while the store fails, ShouldPause() stops ingest first.
  size_t queue_capacity = 200000;
  // A batch that failed on a storage error is retried after this long, the
  // wait doubling after each failure up to `retry_max`.
  std::chrono::milliseconds retry_initial{100};
  std::chrono::milliseconds retry_max{5000};
  // Closing while failing: the writer goes on retrying this long, then gives
  // up on what it holds (logged with the count; their barriers never run).
  std::chrono::milliseconds close_timeout{10000};
  // While failing, ShouldPause() holds once more records than this wait in
  // memory (queued plus the failed batch).
  size_t pause_records = 50000;
};

struct StoreCounters {
  std::atomic<uint64_t> committed{0};   // rows written
  std::atomic<uint64_t> duplicates{0};  // telemetry already stored (same der_id, seq): no row
  // Telemetry samples committed, or found already stored: every other
  // counter here mixes in births, statuses, controls and history rows.
  std::atomic<uint64_t> telemetry{0};
  std::atomic<uint64_t> transactions{0};
  // Records refused for what they hold (a constraint, a value SQLite will
  // never take): logged, not stored, the rest of their batch commits.
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> expired{0};  // rows removed by retention
};

// The writer's state as health() reads it.
struct StoreHealth {
  // A batch failed on a storage error and is not yet committed.
  bool failing = false;
  // The last storage error: the SQLite error (code and message) and what was
  // being written. Kept after the store recovers; empty if there never was one.
  std::string last_error;
  int64_t failing_since_ms = 0;  // wall clock of the first failure in a row; 0 when not failing
  uint64_t retries = 0;          // batch retries since the store opened
  uint64_t held = 0;             // records not yet committed: queued plus the failed batch
  uint64_t accepted = 0;         // records ever added
  uint64_t committed = 0;        // records whose transaction committed
};

// Thread-safe: every public method may be called from any thread.
class Store {
 public:
  // Opens or creates the database and its schema; starts the writer thread.
  // Fails ("in_use") while another Store, in any process, has it open.
  static StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  // Commits everything queued, then closes. While failing it retries for at
  // most options.close_timeout, then gives up: it logs how many records
  // were not committed, never runs their barriers, and pending Flush calls
  // return an error.
  ~Store();

  // Queues a record; blocks only while the queue is full.
  void Add(Record record);
  // Ok once every record added before the call is committed. Returns the
  // storage error instead, without waiting for the retries, when the store
  // is failing or a commit fails while it waits (the records are kept and
  // retried: a later Flush may succeed), or when the store closed first.
  [[nodiscard]] Status Flush();
  // Runs `done` on the writer thread once every record added before the
  // call is committed (the inbox journal drops what is safe in SQLite);
  // never after a failed commit. Dropped, not run, if the store gives up
  // at close.
  void AfterCommit(std::function<void()> done);
  // A snapshot of the writer's state (status, logs).
  StoreHealth health() const;
  // True while the store is failing and holds more than
  // options.pause_records records in memory: the caller should stop taking
  // new input until it recovers rather than grow memory without bound.
  bool ShouldPause() const;
  // Telemetry for a 5-minute bucket that starts before this has missed its
  // rollup: the writer marks it (table rollup_late) for the history jobs.
  void SetRollupWatermark(int64_t bucket_ms) { rollup_watermark_ms_ = bucket_ms; }
  // The largest dispatch run id stored (0 for a new database), read at open;
  // controls count too, since runs cut short by a crash are not recorded.
  int64_t last_run_id() const { return last_run_id_; }
  // The stored result of a schedule request, read on a connection of its own
  // (readers do not wait for the writer); nullopt when there is none.
  // Results still queued for the writer are not seen.
  std::optional<derms::v1::ScheduleResult> LoadScheduleResult(const std::string& request_id) const;
  // The newest stored birth (highest bd_seq) of every DER, by der_id, read
  // the same way: what telemetry replayed from the journal is checked
  // against before the broker's retained births arrive.
  std::map<std::string, derms::v1::DerBirth> LoadBirths() const;
  // The stored price forecasts, in arrival order, read at open (moved out).
  std::vector<derms::v1::PriceForecast> TakeStoredForecasts() { return std::move(forecasts_); }
  const StoreCounters& counters() const { return counters_; }
  const std::string& path() const { return options_.path; }

 private:
  struct Barrier {
    std::function<void()> done;
    bool urgent = true;  // commit now rather than wait for the batch to fill
  };
  using Item = std::variant<Record, Barrier>;
  // What one attempt at a batch counted; added to counters_ only when it
  // commits.
  struct BatchCounts {
    uint64_t rows = 0, duplicates = 0, errors = 0, expired = 0, telemetry = 0;
  };

  Store(const StoreOptions& options, sqlite3* db);
  void WriterLoop();
  // Takes the next batch from the queue into `batch` (waits for the first
  // item, then gathers). False once the queue is closed and empty.
  bool Gather(std::vector<Item>* batch);
  // One attempt at `batch` in one transaction: Ok once it is committed, or
  // the storage error that rolled it back. `attempt` counts from 0.
  Status CommitBatch(const std::vector<Item>& batch, int attempt, BatchCounts* counts);
  // Writes one record inside the open transaction; returns SQLITE_OK or the
  // (extended) result code of the first statement that failed.
  int Write(const Record& record, BatchCounts* counts);
  int WriteHistory(const HistoryWriteRecord& record);
  // A module's row (TableRowRecord), through a statement prepared once per
  // table, columns and mode.
  int WriteRow(const TableRowRecord& record);
  // The batch failed with `error`: enter (or stay in) the error state.
  void NoteFailure(const Status& error, size_t batch_records);
  // Waits out the backoff before the next attempt. False when the store is
  // closing and options.close_timeout has passed: time to give up.
  bool WaitToRetry(std::chrono::milliseconds* backoff);
  // Closing while failing: drops `batch` and everything queued, logged.
  void GiveUp(std::vector<Item>* batch);
  uint64_t Held() const;

  const StoreOptions options_;
  std::optional<DbLock> lock_;  // on <path>.lock, while open
  sqlite3* db_;                 // used only by the writer thread after Open
  int64_t last_run_id_ = 0;
  std::atomic<int64_t> rollup_watermark_ms_{0};
  std::vector<derms::v1::PriceForecast> forecasts_;
  StoreCounters counters_;
  BlockingQueue<Item> queue_;
  struct Statements;
  std::unique_ptr<Statements> statements_;  // writer thread only
  using RowStatement = std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>;
  std::map<std::string, RowStatement> row_statements_;  // writer thread only
  int64_t batch_id_ = 0;                    // writer thread only: the last batch's id

  std::atomic<uint64_t> accepted_{0};   // records added
  std::atomic<uint64_t> committed_{0};  // records committed
  std::atomic<uint64_t> abandoned_{0};  // records given up at close
  std::atomic<bool> failing_{false};
  std::atomic<uint64_t> retries_{0};

  // Wakes Flush callers (a barrier ran, a commit failed, the store gave up)
  // and the writer's backoff (the store is closing).
  mutable std::mutex health_mutex_;
  std::condition_variable health_cv_;
  std::string last_error_;        // GUARDED_BY(health_mutex_)
  int64_t failing_since_ms_ = 0;  // GUARDED_BY(health_mutex_)
  uint64_t failures_ = 0;         // GUARDED_BY(health_mutex_): failed attempts
  bool closing_ = false;          // GUARDED_BY(health_mutex_)
  std::chrono::steady_clock::time_point close_deadline_;  // GUARDED_BY(health_mutex_)
  bool gave_up_ = false;                                  // GUARDED_BY(health_mutex_)

  std::thread writer_;
};

}  // namespace derms::storage

#endif  // DERMS_CLOUD_AGGREGATOR_STORAGE_STORE_H_
