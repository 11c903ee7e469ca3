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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "cloud_aggregator/history/rollup.h"
#include "cloud_aggregator/storage/backup.h"
#include "common/blocking_queue.h"
#include "common/status.h"
#include "derms/v1/derms.pb.h"

struct sqlite3;

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

struct BirthRecord {
  derms::v1::DerBirth birth;
  int64_t received_ms;
};
struct StatusRecord {
  std::string der_id;
  bool online;
  uint64_t bd_seq;
  std::string cause;  // "status", "will", "birth", "silence", "telemetry"
  int64_t timestamp_ms;
  int64_t received_ms;
};
struct TelemetryRecord {
  derms::v1::Telemetry telemetry;
  int64_t received_ms;
};
struct ControlRecord {
  derms::v1::Control control;
  std::string der_id;
  int64_t run_id;  // the dispatch run that sent it, 0 if none
};
struct ResponseRecord {
  derms::v1::ControlResponse response;
  std::string der_id;
  int64_t received_ms;
};
struct GridStatusRecord {
  derms::v1::GridStatus grid;
  int64_t received_ms;
};
// One member's part in a dispatch run: the inputs its setpoint came from
// and what became of it. Only members given a setpoint are recorded.
struct AllocationRow {
  std::string der_id;
  std::string vder_id;  // the virtual DER that claims it
  int64_t round = 0;    // round of the last control sent
  double baseline_kw = 0;
  double min_kw = 0;
  double max_kw = 0;
  double soc_pct = -1;  // negative: none (stored as NULL)
  double cost = 0;
  double target_kw = 0;
  double applied_kw = 0;
  std::string state;  // APPLIED, CLAMPED, FAILED, NO_ANSWER
  std::string command_id;
  std::string reason;
};
// A finished dispatch run: each workflow stage's inputs and outputs.
struct DispatchRunRecord {
  int64_t run_id = 0;
  std::string vder_id;
  std::string policy;
  std::string trigger;        // "grid_status" or "dispatch_request"
  std::string request_id;     // for a dispatch request
  std::string substation_id;  // for a grid status
  std::string outcome;        // "completed", "superseded", "reconfigured", "stopped"
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  int64_t duration_s = 0;
  // Stage 1 (grid runs).
  bool has_grid = false;
  derms::v1::GridStatus grid;
  // Stages 2 and 3.
  uint32_t members_active = 0;
  double baseline_kw = 0, min_kw = 0, max_kw = 0, battery_max_discharge_kw = 0;
  // Stages 4 and 5.
  double imbalance_kw = 0, frequency_kw = 0, requested_kw = 0, command_kw = 0;
  // Stage 6 and the closed loop.
  double planned_kw = 0, achieved_kw = 0, shortfall_kw = 0;
  uint32_t rounds = 0, applied = 0, clamped = 0, failed = 0, no_answer = 0;
  std::string reason;
  std::vector<AllocationRow> allocations;
};

// A price forecast as received (one row per interval). The merged price
// timeline is rebuilt from these, in arrival order, when the aggregator starts.
struct PriceForecastRecord {
  derms::v1::PriceForecast forecast;
  int64_t received_ms;
};
// Removes forecast rows whose interval ended before `before_ms`.
struct PurgePricesRecord {
  int64_t before_ms;
};
// A charging schedule request and its latest status (upserted by request_id),
// each status also kept as an event: its lifecycle.
struct ScheduleRecord {
  derms::v1::ScheduleRequest request;
  derms::v1::ScheduleResult result;
  int64_t received_ms;
  int64_t updated_ms;
};

// One rollup bucket of a series: kind "der" or "vder", at 300, 3600 or 86400 s.
struct RollupRow {
  int64_t resolution_s = 0;
  std::string kind;
  std::string id;
  history::Bucket bucket;
};
// A sealed chunk of buckets (history/chunk_codec) replacing the open rows of
// its span.
struct ChunkRow {
  int64_t resolution_s = 0;
  std::string kind;
  std::string id;
  int64_t chunk_ms = 0;
  int64_t buckets = 0;
  std::string data;
};
// What one step of the history jobs writes, in one transaction: new or
// revised open buckets, sealed chunks (their open rows go), late-sample marks
// dealt with, and the jobs' progress.
struct HistoryWriteRecord {
  std::vector<RollupRow> open_rows;
  std::vector<ChunkRow> chunks;
  std::vector<std::pair<std::string, int64_t>> handled_late;  // (der_id, bucket_ms)
  std::vector<std::pair<std::string, int64_t>> state;         // history_state key -> value
};
// Deletes at most `limit` rows older than `before_ms`: raw telemetry
// (resolution_s 0) or the rollups of one resolution (whole chunks only).
struct ExpireRecord {
  int64_t resolution_s = 0;
  int64_t before_ms = 0;
  int64_t limit = 5000;
};
// Which DERs each virtual DER holds now (replaces the whole table): the
// history jobs sum members' rollups into the virtual DER's.
struct VderMembersRecord {
  std::vector<std::pair<std::string, std::vector<std::string>>> members;
};
// Something announced on events/{kind} (reports, backups), kept.
struct EventRecord {
  std::string kind;
  std::string name;
  int64_t timestamp_ms = 0;
  std::string payload_json;
};

using Record =
    std::variant<BirthRecord, StatusRecord, TelemetryRecord, ControlRecord, ResponseRecord,
                 GridStatusRecord, DispatchRunRecord, PriceForecastRecord, PurgePricesRecord,
                 ScheduleRecord, HistoryWriteRecord, ExpireRecord, VderMembersRecord, EventRecord>;

// Counted when their transaction commits: a rolled-back attempt counts
// nothing, so a retried batch is counted once.
struct StoreCounters {
  std::atomic<uint64_t> committed{0};   // rows written
  std::atomic<uint64_t> duplicates{0};  // telemetry already stored (same der_id, seq): no row
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
    uint64_t rows = 0, duplicates = 0, errors = 0, expired = 0;
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
