// The aggregator's SQLite history: every accepted birth, status change,
// telemetry sample, control, response, grid status and dispatch run.
// Writes are queued and committed in batches on the store's own writer
// thread (WAL mode), so ingest never waits on the disk. Telemetry is keyed
// by (der_id, seq): a redelivered sample is stored once.
#ifndef DERMS_CLOUD_AGGREGATOR_STORAGE_STORE_H_
#define DERMS_CLOUD_AGGREGATOR_STORAGE_STORE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
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
  // Queue bound: when the disk falls this far behind, producers wait.
  size_t queue_capacity = 200000;
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

struct StoreCounters {
  std::atomic<uint64_t> committed{0};   // rows written
  std::atomic<uint64_t> duplicates{0};  // telemetry already stored (same der_id, seq): no row
  std::atomic<uint64_t> transactions{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> expired{0};  // rows removed by retention
};

// Thread-safe: Add and Flush may be called from any thread.
class Store {
 public:
  // Opens or creates the database and its schema; starts the writer thread.
  // Fails ("in_use") while another Store, in any process, has it open.
  static StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  // Commits everything queued, then closes.
  ~Store();

  // Queues a record; blocks only while the queue is full.
  void Add(Record record);
  // Returns once every record added before the call is committed.
  void Flush();
  // Runs `done` on the writer thread once every record added before the
  // call is committed (the inbox journal drops what is safe in SQLite).
  void AfterCommit(std::function<void()> done);
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

  Store(const StoreOptions& options, sqlite3* db);
  void WriterLoop();
  void Write(const Record& record);
  int WriteHistory(const HistoryWriteRecord& record);

  const StoreOptions options_;
  std::optional<DbLock> lock_;  // on <path>.lock, while open
  sqlite3* db_;                 // used only by the writer thread after Open
  int64_t last_run_id_ = 0;
  std::atomic<int64_t> rollup_watermark_ms_{0};
  std::vector<derms::v1::PriceForecast> forecasts_;
  StoreCounters counters_;
  BlockingQueue<Item> queue_;
  struct Statements;
  std::unique_ptr<Statements> statements_;
  std::thread writer_;
};

}  // namespace derms::storage

#endif  // DERMS_CLOUD_AGGREGATOR_STORAGE_STORE_H_
