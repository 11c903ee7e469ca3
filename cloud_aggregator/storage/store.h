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

#include "cloud_aggregator/storage/backup.h"
#include "cloud_aggregator/storage/records.h"
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
