#include "cloud_aggregator/storage/store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <tuple>

#include "cloud_aggregator/history/chunk_codec.h"
#include "cloud_aggregator/storage/backup.h"

namespace derms::storage {
namespace {

constexpr const char* kSchema = R"sql(
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
-- The pages a thousand DERs' inserts touch do not fit the default 2 MB
-- (bench: +27 % rows/s); a WAL a long reader let grow shrinks back to this
-- once a checkpoint resets it.
PRAGMA cache_size = -65536;
PRAGMA journal_size_limit = 67108864;
CREATE TABLE IF NOT EXISTS ders (
  der_id TEXT PRIMARY KEY, der_type TEXT NOT NULL, substation_id TEXT NOT NULL,
  feeder_id TEXT, provider_id TEXT, max_discharge_kw REAL, max_charge_kw REAL,
  energy_capacity_kwh REAL, latitude REAL, longitude REAL, tags TEXT, model TEXT,
  telemetry_interval_s INTEGER, bd_seq INTEGER NOT NULL, born_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS births (
  der_id TEXT NOT NULL, bd_seq INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL, payload BLOB NOT NULL,
  PRIMARY KEY (der_id, bd_seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS status_changes (
  id INTEGER PRIMARY KEY, der_id TEXT NOT NULL, online INTEGER NOT NULL,
  bd_seq INTEGER NOT NULL, cause TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry (
  der_id TEXT NOT NULL, seq INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL, active_power_kw REAL NOT NULL, reactive_power_kvar REAL,
  soc_pct REAL, voltage_v REAL, frequency_hz REAL, setpoint_kw REAL, run_time_s REAL,
  available_discharge_kw REAL, available_charge_kw REAL, baseline_kw REAL,
  command_id TEXT, alarms TEXT, is_historical INTEGER NOT NULL,
  PRIMARY KEY (der_id, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS telemetry_by_time ON telemetry (timestamp_ms);
CREATE TABLE IF NOT EXISTS controls (
  command_id TEXT PRIMARY KEY, der_id TEXT NOT NULL, run_id INTEGER NOT NULL,
  issued_at_ms INTEGER NOT NULL, priority INTEGER NOT NULL, intervals INTEGER NOT NULL,
  start_ms INTEGER NOT NULL, duration_s INTEGER NOT NULL, target_kw REAL NOT NULL,
  payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS controls_by_run ON controls (run_id);
CREATE TABLE IF NOT EXISTS responses (
  id INTEGER PRIMARY KEY, command_id TEXT NOT NULL, der_id TEXT NOT NULL,
  status TEXT NOT NULL, applied_kw REAL, reason TEXT, interval_index INTEGER,
  timestamp_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS responses_by_command ON responses (command_id);
CREATE TABLE IF NOT EXISTS grid_status (
  id INTEGER PRIMARY KEY, substation_id TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL, frequency_hz REAL, voltage_pu REAL, load_kw REAL,
  supply_kw REAL);
CREATE TABLE IF NOT EXISTS dispatch_runs (
  run_id INTEGER PRIMARY KEY, vder_id TEXT NOT NULL, policy TEXT NOT NULL, trigger TEXT NOT NULL,
  request_id TEXT, substation_id TEXT, outcome TEXT NOT NULL, started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL, duration_s INTEGER NOT NULL,
  grid_frequency_hz REAL, grid_voltage_pu REAL, grid_load_kw REAL, grid_supply_kw REAL,
  members_active INTEGER NOT NULL, baseline_kw REAL, min_kw REAL, max_kw REAL,
  battery_max_discharge_kw REAL, imbalance_kw REAL, frequency_kw REAL, requested_kw REAL,
  command_kw REAL, planned_kw REAL, achieved_kw REAL, shortfall_kw REAL, rounds INTEGER,
  applied INTEGER, clamped INTEGER, failed INTEGER, no_answer INTEGER, reason TEXT);
CREATE TABLE IF NOT EXISTS dispatch_allocations (
  run_id INTEGER NOT NULL, der_id TEXT NOT NULL, vder_id TEXT NOT NULL, round INTEGER NOT NULL,
  baseline_kw REAL, min_kw REAL, max_kw REAL, soc_pct REAL, cost REAL, target_kw REAL NOT NULL,
  applied_kw REAL, state TEXT NOT NULL, command_id TEXT, reason TEXT,
  PRIMARY KEY (run_id, der_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dispatch_allocations_by_der ON dispatch_allocations (der_id, run_id);
CREATE TABLE IF NOT EXISTS price_forecasts (
  id INTEGER PRIMARY KEY, node TEXT NOT NULL, issued_ms INTEGER NOT NULL, kind TEXT NOT NULL,
  start_ms INTEGER NOT NULL, duration_s INTEGER NOT NULL, price_per_mwh REAL NOT NULL,
  received_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS price_forecasts_by_end ON price_forecasts (start_ms + duration_s * 1000);
CREATE TABLE IF NOT EXISTS schedule_requests (
  request_id TEXT PRIMARY KEY, der_id TEXT, node TEXT, status TEXT NOT NULL,
  received_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, energy_kwh REAL, cost REAL,
  immediate_cost REAL, shortfall_kwh REAL, reason TEXT, command_id TEXT,
  request BLOB NOT NULL, result BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS schedule_events (
  request_id TEXT NOT NULL, status TEXT NOT NULL, timestamp_ms INTEGER NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS schedule_events_by_request ON schedule_events (request_id);
CREATE TABLE IF NOT EXISTS rollups_open (
  resolution_s INTEGER NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
  samples INTEGER NOT NULL, availability REAL NOT NULL, min_kw REAL NOT NULL,
  max_kw REAL NOT NULL, mean_kw REAL NOT NULL, export_kwh REAL NOT NULL,
  import_kwh REAL NOT NULL, soc_pct REAL, capacity_kw REAL NOT NULL,
  PRIMARY KEY (resolution_s, kind, id, bucket_ms)) WITHOUT ROWID;
-- A rowid table: its rows keep up to ~4 KB on their page, where a WITHOUT
-- ROWID row spills past ~1 KB onto a whole overflow page (bench: 5.4 -> 3.6
-- bytes per bucket).
CREATE TABLE IF NOT EXISTS rollup_chunks (
  resolution_s INTEGER NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, chunk_ms INTEGER NOT NULL,
  buckets INTEGER NOT NULL, data BLOB NOT NULL,
  UNIQUE (resolution_s, kind, id, chunk_ms));
CREATE TABLE IF NOT EXISTS rollup_late (
  der_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
  PRIMARY KEY (der_id, bucket_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vder_members (
  vder_id TEXT NOT NULL, der_id TEXT NOT NULL, PRIMARY KEY (vder_id, der_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vder_members_by_der ON vder_members (der_id);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
  payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, timestamp_ms);
PRAGMA user_version = 5;
)sql";

// Schema 1 (the first release) had a narrower dispatch_runs: it is kept as
// dispatch_runs_v1 rather than dropped, and the new one is created beside it.
bool NeedsMigrationFrom1(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  bool old = false;
  if (sqlite3_prepare_v2(db,
                         "SELECT COUNT(*) FROM pragma_table_info('dispatch_runs') "
                         "WHERE name = 'residual_kw'",
                         -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    old = sqlite3_column_int(stmt, 0) > 0;
  }
  sqlite3_finalize(stmt);
  return old;
}

// Schema 4 kept rollup_chunks WITHOUT ROWID; its rows move to the rowid
// table of schema 5.
constexpr const char* kMigrateChunksFrom4 = R"sql(
ALTER TABLE rollup_chunks RENAME TO rollup_chunks_v4;
CREATE TABLE rollup_chunks (
  resolution_s INTEGER NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, chunk_ms INTEGER NOT NULL,
  buckets INTEGER NOT NULL, data BLOB NOT NULL,
  UNIQUE (resolution_s, kind, id, chunk_ms));
INSERT INTO rollup_chunks SELECT * FROM rollup_chunks_v4;
DROP TABLE rollup_chunks_v4;
)sql";

bool ChunksWithoutRowid(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  bool old = false;
  if (sqlite3_prepare_v2(db,
                         "SELECT sql LIKE '%WITHOUT ROWID%' FROM sqlite_schema "
                         "WHERE type = 'table' AND name = 'rollup_chunks'",
                         -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    old = sqlite3_column_int(stmt, 0) != 0;
  }
  sqlite3_finalize(stmt);
  return old;
}

Status SqlError(sqlite3* db, const std::string& what) {
  return Status::Error("storage_error", fmt::format("{}: {}", what, sqlite3_errmsg(db)));
}

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      spdlog::critical("storage: cannot prepare '{}': {}", sql, sqlite3_errmsg(db));
      std::abort();  // a bug in our SQL, not bad input
    }
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  // Runs the statement; returns rows changed, or -1 on error (logged).
  int Run() {
    int rc = sqlite3_step(stmt_);
    int changed = rc == SQLITE_DONE ? sqlite3_changes(db_) : -1;
    if (rc != SQLITE_DONE) spdlog::error("storage: {}", sqlite3_errmsg(db_));
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return changed;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

struct Store::Statements {
  explicit Statements(sqlite3* db)
      : upsert_der(db,
                   "INSERT INTO ders VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15) "
                   "ON CONFLICT(der_id) DO UPDATE SET der_type=?2, substation_id=?3, "
                   "feeder_id=?4, provider_id=?5, max_discharge_kw=?6, max_charge_kw=?7, "
                   "energy_capacity_kwh=?8, latitude=?9, longitude=?10, tags=?11, model=?12, "
                   "telemetry_interval_s=?13, bd_seq=?14, born_ms=?15 WHERE ?14 >= bd_seq"),
        insert_birth(db, "INSERT OR IGNORE INTO births VALUES (?,?,?,?,?)"),
        insert_status(db,
                      "INSERT INTO status_changes (der_id, online, bd_seq, cause, timestamp_ms, "
                      "received_ms) VALUES (?,?,?,?,?,?)"),
        insert_telemetry(db,
                         "INSERT OR IGNORE INTO telemetry VALUES "
                         "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
        insert_control(db, "INSERT OR IGNORE INTO controls VALUES (?,?,?,?,?,?,?,?,?,?)"),
        insert_response(db,
                        "INSERT INTO responses (command_id, der_id, status, applied_kw, reason, "
                        "interval_index, timestamp_ms, received_ms) VALUES (?,?,?,?,?,?,?,?)"),
        insert_grid(db,
                    "INSERT INTO grid_status (substation_id, timestamp_ms, received_ms, "
                    "frequency_hz, voltage_pu, load_kw, supply_kw) VALUES (?,?,?,?,?,?,?)"),
        insert_run(db,
                   "INSERT OR REPLACE INTO dispatch_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                   "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
        insert_allocation(db,
                          "INSERT OR REPLACE INTO dispatch_allocations VALUES "
                          "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
        insert_price(db,
                     "INSERT INTO price_forecasts (node, issued_ms, kind, start_ms, duration_s, "
                     "price_per_mwh, received_ms) VALUES (?,?,?,?,?,?,?)"),
        purge_prices(db, "DELETE FROM price_forecasts WHERE start_ms + duration_s * 1000 < ?"),
        upsert_schedule(db,
                        "INSERT INTO schedule_requests VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,"
                        "?12,?13,?14) ON CONFLICT(request_id) DO UPDATE SET status=?4, "
                        "updated_ms=?6, energy_kwh=?7, cost=?8, immediate_cost=?9, "
                        "shortfall_kwh=?10, reason=?11, command_id=?12, result=?14"),
        insert_schedule_event(db, "INSERT INTO schedule_events VALUES (?,?,?,?)"),
        mark_late(db, "INSERT OR IGNORE INTO rollup_late VALUES (?,?)"),
        handled_late(db, "DELETE FROM rollup_late WHERE der_id = ? AND bucket_ms = ?"),
        upsert_open(db, "INSERT OR REPLACE INTO rollups_open VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"),
        upsert_chunk(db, "INSERT OR REPLACE INTO rollup_chunks VALUES (?,?,?,?,?,?)"),
        delete_sealed(db,
                      "DELETE FROM rollups_open WHERE resolution_s = ?1 AND kind = ?2 AND id = ?3 "
                      "AND bucket_ms >= ?4 AND bucket_ms < ?5"),
        set_state(db, "INSERT OR REPLACE INTO history_state VALUES (?,?)"),
        expire_telemetry(db,
                         "DELETE FROM telemetry WHERE (der_id, seq) IN (SELECT der_id, seq FROM "
                         "telemetry WHERE timestamp_ms < ?1 ORDER BY timestamp_ms LIMIT ?2)"),
        expire_chunks(db,
                      "DELETE FROM rollup_chunks WHERE (resolution_s, kind, id, chunk_ms) IN "
                      "(SELECT resolution_s, kind, id, chunk_ms FROM rollup_chunks WHERE "
                      "resolution_s = ?1 AND chunk_ms + ?4 <= ?2 LIMIT ?3)"),
        // ?2 is a chunk boundary: only whole chunks expire.
        expire_open(db, "DELETE FROM rollups_open WHERE resolution_s = ?1 AND bucket_ms < ?2"),
        clear_members(db, "DELETE FROM vder_members"),
        insert_member(db, "INSERT OR IGNORE INTO vder_members VALUES (?,?)"),
        insert_event(db, "INSERT INTO events (kind, name, timestamp_ms, payload) VALUES (?,?,?,?)"),
        begin(db, "BEGIN"),
        commit(db, "COMMIT") {}
  Stmt upsert_der, insert_birth, insert_status, insert_telemetry, insert_control, insert_response,
      insert_grid, insert_run, insert_allocation, insert_price, purge_prices, upsert_schedule,
      insert_schedule_event, mark_late, handled_late, upsert_open, upsert_chunk, delete_sealed,
      set_state, expire_telemetry, expire_chunks, expire_open, clear_members, insert_member,
      insert_event, begin, commit;
};

StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) {
    return Status::Error("storage_error",
                         fmt::format("database directory '{}': {}", parent.string(), ec.message()));
  }
  // Held as long as the store is open: a restore cannot replace the
  // database under its writer.
  auto lock = DbLock::Acquire(options.path);
  if (!lock.ok()) return lock.status();
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(options.path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    Status s = SqlError(db, fmt::format("database '{}' cannot be opened", options.path));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  if ((NeedsMigrationFrom1(db) &&
       sqlite3_exec(db, "ALTER TABLE dispatch_runs RENAME TO dispatch_runs_v1", nullptr, nullptr,
                    &err) != SQLITE_OK) ||
      (ChunksWithoutRowid(db) &&
       sqlite3_exec(db, (std::string("BEGIN;") + kMigrateChunksFrom4 + "COMMIT;").c_str(), nullptr,
                    nullptr, &err) != SQLITE_OK) ||
      sqlite3_exec(db, kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = Status::Error(
        "storage_error", fmt::format("database '{}' schema: {}", options.path, err ? err : "?"));
    sqlite3_free(err);
    sqlite3_close(db);
    return s;
  }
  auto store = std::unique_ptr<Store>(new Store(options, db));
  store->lock_ = std::move(lock).value();
  return store;
}

Store::Store(const StoreOptions& options, sqlite3* db)
    : options_(options), db_(db), queue_(options.queue_capacity) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "SELECT MAX((SELECT COALESCE(MAX(run_id), 0) FROM dispatch_runs), "
                         "(SELECT COALESCE(MAX(run_id), 0) FROM controls))",
                         -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    last_run_id_ = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  if (sqlite3_prepare_v2(db_, "SELECT value FROM history_state WHERE key = 'rollup_watermark_ms'",
                         -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    rollup_watermark_ms_ = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  // The forecasts as they arrived, one PriceForecast per (arrival, node,
  // issue, kind) run of rows, to rebuild the merged price timeline.
  if (sqlite3_prepare_v2(db_,
                         "SELECT node, issued_ms, kind, start_ms, duration_s, price_per_mwh, "
                         "received_ms FROM price_forecasts ORDER BY id",
                         -1, &stmt, nullptr) == SQLITE_OK) {
    std::tuple<std::string, int64_t, std::string, int64_t> current;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      auto text = [&](int i) {
        const unsigned char* t = sqlite3_column_text(stmt, i);
        return std::string(t ? reinterpret_cast<const char*>(t) : "");
      };
      std::tuple<std::string, int64_t, std::string, int64_t> key{
          text(0), sqlite3_column_int64(stmt, 1), text(2), sqlite3_column_int64(stmt, 6)};
      if (forecasts_.empty() || key != current) {
        current = key;
        derms::v1::PriceForecast f;
        f.set_node(std::get<0>(key));
        f.set_issued_ms(std::get<1>(key));
        derms::v1::ForecastKind kind = derms::v1::SHORT_TERM;
        derms::v1::ForecastKind_Parse(std::get<2>(key), &kind);
        f.set_kind(kind);
        forecasts_.push_back(std::move(f));
      }
      auto* iv = forecasts_.back().add_intervals();
      iv->set_start_ms(sqlite3_column_int64(stmt, 3));
      iv->set_duration_s(static_cast<uint32_t>(sqlite3_column_int64(stmt, 4)));
      iv->set_price_per_mwh(sqlite3_column_double(stmt, 5));
    }
  }
  sqlite3_finalize(stmt);
  statements_ = std::make_unique<Statements>(db_);
  writer_ = std::thread([this] { WriterLoop(); });
}

Store::~Store() {
  queue_.Close();
  if (writer_.joinable()) writer_.join();
  statements_.reset();
  sqlite3_close(db_);
}

std::optional<derms::v1::ScheduleResult> Store::LoadScheduleResult(
    const std::string& request_id) const {
  sqlite3* db = nullptr;
  std::optional<derms::v1::ScheduleResult> out;
  if (sqlite3_open_v2(options_.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 1000);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT result FROM schedule_requests WHERE request_id = ?", -1,
                           &stmt, nullptr) == SQLITE_OK &&
        sqlite3_bind_text(stmt, 1, request_id.c_str(), -1, SQLITE_TRANSIENT) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      derms::v1::ScheduleResult r;
      const void* blob = sqlite3_column_blob(stmt, 0);
      int size = sqlite3_column_bytes(stmt, 0);
      if (blob != nullptr && r.ParseFromArray(blob, size)) out = std::move(r);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return out;
}

void Store::Add(Record record) { queue_.Push(Item(std::move(record))); }

void Store::Flush() {
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  if (!queue_.Push(Item(Barrier{[done] { done->set_value(); }, true}))) {
    return;  // closed: nothing more will be written
  }
  future.wait();
}

void Store::AfterCommit(std::function<void()> done) {
  queue_.Push(Item(Barrier{std::move(done), false}));
}

void Store::WriterLoop() {
  std::vector<Item> batch;
  std::vector<std::function<void()>> barriers;
  while (true) {
    auto first = queue_.PopFor(std::chrono::milliseconds(200));
    if (!first) {
      if (queue_.closed() && queue_.Size() == 0) return;
      continue;
    }
    batch.clear();
    barriers.clear();
    batch.push_back(std::move(*first));
    auto deadline = std::chrono::steady_clock::now() + options_.gather;
    auto is_barrier = [](const Item& item) {
      const auto* b = std::get_if<Barrier>(&item);
      return b != nullptr && b->urgent;
    };
    bool flush_waiting = is_barrier(batch.front());
    while (!flush_waiting && batch.size() < options_.batch_max && !queue_.closed()) {
      size_t before = batch.size();
      queue_.DrainTo(&batch, options_.batch_max - batch.size());
      // A Flush is waiting for this commit: do not keep it waiting.
      flush_waiting = std::any_of(batch.begin() + before, batch.end(), is_barrier);
      if (flush_waiting) break;
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          deadline - now, std::chrono::milliseconds(5)));
    }
    queue_.DrainTo(&batch, options_.batch_max - batch.size());
    statements_->begin.Run();
    for (const auto& item : batch) {
      if (const auto* record = std::get_if<Record>(&item)) {
        Write(*record);
      } else {
        barriers.push_back(std::get<Barrier>(item).done);
      }
    }
    if (statements_->commit.Run() < 0) {
      ++counters_.errors;
    } else {
      ++counters_.transactions;
    }
    for (const auto& b : barriers) b();
  }
}

void Store::Write(const Record& record) {
  Statements& st = *statements_;
  int changed = 0;
  if (const auto* r = std::get_if<BirthRecord>(&record)) {
    const auto& b = r->birth;
    st.upsert_der.Bind(1, b.der_id())
        .Bind(2, derms::v1::DerType_Name(b.der_type()))
        .Bind(3, b.substation_id())
        .Bind(4, b.feeder_id())
        .Bind(5, b.provider_id())
        .Bind(6, b.max_discharge_kw())
        .Bind(7, b.max_charge_kw())
        .Bind(8, b.energy_capacity_kwh())
        .Bind(9, b.latitude())
        .Bind(10, b.longitude())
        .Bind(11, Join(b.tags()))
        .Bind(12, b.model())
        .Bind(13, static_cast<int64_t>(b.telemetry_interval_s()))
        .Bind(14, static_cast<int64_t>(b.bd_seq()))
        .Bind(15, b.timestamp_ms())
        .Run();
    changed = st.insert_birth.Bind(1, b.der_id())
                  .Bind(2, static_cast<int64_t>(b.bd_seq()))
                  .Bind(3, b.timestamp_ms())
                  .Bind(4, r->received_ms)
                  .BindBlob(5, b.SerializeAsString())
                  .Run();
  } else if (const auto* r = std::get_if<StatusRecord>(&record)) {
    changed = st.insert_status.Bind(1, r->der_id)
                  .Bind(2, static_cast<int64_t>(r->online))
                  .Bind(3, static_cast<int64_t>(r->bd_seq))
                  .Bind(4, r->cause)
                  .Bind(5, r->timestamp_ms)
                  .Bind(6, r->received_ms)
                  .Run();
  } else if (const auto* r = std::get_if<TelemetryRecord>(&record)) {
    const auto& t = r->telemetry;
    std::string alarms;
    for (const auto& a : t.alarms()) {
      alarms +=
          (alarms.empty() ? "" : ",") + a.code() + ":" + derms::v1::Severity_Name(a.severity());
    }
    st.insert_telemetry.Bind(1, t.der_id())
        .Bind(2, static_cast<int64_t>(t.seq()))
        .Bind(3, t.timestamp_ms())
        .Bind(4, r->received_ms)
        .Bind(5, t.active_power_kw())
        .Bind(6, t.reactive_power_kvar());
    if (t.has_soc_pct())
      st.insert_telemetry.Bind(7, t.soc_pct());
    else
      st.insert_telemetry.BindNull(7);
    st.insert_telemetry.Bind(8, t.voltage_v()).Bind(9, t.frequency_hz());
    if (t.has_setpoint_kw())
      st.insert_telemetry.Bind(10, t.setpoint_kw());
    else
      st.insert_telemetry.BindNull(10);
    st.insert_telemetry.Bind(11, t.run_time_s());
    // Absent means "my nameplate" (discharge, charge) or "my output" (baseline).
    if (t.has_available_discharge_kw())
      st.insert_telemetry.Bind(12, t.available_discharge_kw());
    else
      st.insert_telemetry.BindNull(12);
    if (t.has_available_charge_kw())
      st.insert_telemetry.Bind(13, t.available_charge_kw());
    else
      st.insert_telemetry.BindNull(13);
    if (t.has_baseline_kw())
      st.insert_telemetry.Bind(14, t.baseline_kw());
    else
      st.insert_telemetry.BindNull(14);
    changed = st.insert_telemetry.Bind(15, t.command_id())
                  .Bind(16, alarms)
                  .Bind(17, static_cast<int64_t>(t.is_historical()))
                  .Run();
    if (changed == 0) ++counters_.duplicates;
    // A sample for a bucket already rolled up: the history jobs redo it.
    int64_t bucket_ms = history::BucketStart(t.timestamp_ms(), history::k5Min);
    if (changed > 0 && bucket_ms < rollup_watermark_ms_.load(std::memory_order_relaxed)) {
      st.mark_late.Bind(1, t.der_id()).Bind(2, bucket_ms).Run();
    }
  } else if (const auto* r = std::get_if<ControlRecord>(&record)) {
    const auto& c = r->control;
    const auto& first = c.intervals(0);
    changed = st.insert_control.Bind(1, c.command_id())
                  .Bind(2, r->der_id)
                  .Bind(3, r->run_id)
                  .Bind(4, c.issued_at_ms())
                  .Bind(5, static_cast<int64_t>(c.priority()))
                  .Bind(6, static_cast<int64_t>(c.intervals_size()))
                  .Bind(7, first.start_ms())
                  .Bind(8, static_cast<int64_t>(first.duration_s()))
                  .Bind(9, first.target_kw())
                  .BindBlob(10, c.SerializeAsString())
                  .Run();
  } else if (const auto* r = std::get_if<ResponseRecord>(&record)) {
    const auto& p = r->response;
    changed = st.insert_response.Bind(1, p.command_id())
                  .Bind(2, r->der_id)
                  .Bind(3, derms::v1::ControlStatus_Name(p.status()))
                  .Bind(4, p.applied_kw())
                  .Bind(5, p.reason())
                  .Bind(6, static_cast<int64_t>(p.interval_index()))
                  .Bind(7, p.timestamp_ms())
                  .Bind(8, r->received_ms)
                  .Run();
  } else if (const auto* r = std::get_if<GridStatusRecord>(&record)) {
    const auto& g = r->grid;
    changed = st.insert_grid.Bind(1, g.substation_id())
                  .Bind(2, g.timestamp_ms())
                  .Bind(3, r->received_ms)
                  .Bind(4, g.frequency_hz())
                  .Bind(5, g.voltage_pu())
                  .Bind(6, g.load_kw())
                  .Bind(7, g.supply_kw())
                  .Run();
  } else if (const auto* r = std::get_if<DispatchRunRecord>(&record)) {
    Stmt& q = st.insert_run;
    q.Bind(1, r->run_id)
        .Bind(2, r->vder_id)
        .Bind(3, r->policy)
        .Bind(4, r->trigger)
        .Bind(5, r->request_id)
        .Bind(6, r->substation_id)
        .Bind(7, r->outcome)
        .Bind(8, r->started_ms)
        .Bind(9, r->finished_ms)
        .Bind(10, r->duration_s);
    if (r->has_grid) {
      q.Bind(11, r->grid.frequency_hz())
          .Bind(12, r->grid.voltage_pu())
          .Bind(13, r->grid.load_kw())
          .Bind(14, r->grid.supply_kw());
    } else {
      q.BindNull(11).BindNull(12).BindNull(13).BindNull(14);
    }
    changed = q.Bind(15, static_cast<int64_t>(r->members_active))
                  .Bind(16, r->baseline_kw)
                  .Bind(17, r->min_kw)
                  .Bind(18, r->max_kw)
                  .Bind(19, r->battery_max_discharge_kw)
                  .Bind(20, r->imbalance_kw)
                  .Bind(21, r->frequency_kw)
                  .Bind(22, r->requested_kw)
                  .Bind(23, r->command_kw)
                  .Bind(24, r->planned_kw)
                  .Bind(25, r->achieved_kw)
                  .Bind(26, r->shortfall_kw)
                  .Bind(27, static_cast<int64_t>(r->rounds))
                  .Bind(28, static_cast<int64_t>(r->applied))
                  .Bind(29, static_cast<int64_t>(r->clamped))
                  .Bind(30, static_cast<int64_t>(r->failed))
                  .Bind(31, static_cast<int64_t>(r->no_answer))
                  .Bind(32, r->reason)
                  .Run();
    for (const auto& a : r->allocations) {
      Stmt& row = st.insert_allocation;
      row.Bind(1, r->run_id)
          .Bind(2, a.der_id)
          .Bind(3, a.vder_id)
          .Bind(4, a.round)
          .Bind(5, a.baseline_kw)
          .Bind(6, a.min_kw)
          .Bind(7, a.max_kw);
      if (a.soc_pct >= 0) {
        row.Bind(8, a.soc_pct);
      } else {
        row.BindNull(8);
      }
      if (row.Bind(9, a.cost)
              .Bind(10, a.target_kw)
              .Bind(11, a.applied_kw)
              .Bind(12, a.state)
              .Bind(13, a.command_id)
              .Bind(14, a.reason)
              .Run() < 0) {
        ++counters_.errors;
      }
    }
  } else if (const auto* r = std::get_if<PriceForecastRecord>(&record)) {
    const auto& f = r->forecast;
    for (const auto& iv : f.intervals()) {
      changed = st.insert_price.Bind(1, f.node())
                    .Bind(2, f.issued_ms())
                    .Bind(3, derms::v1::ForecastKind_Name(f.kind()))
                    .Bind(4, iv.start_ms())
                    .Bind(5, static_cast<int64_t>(iv.duration_s()))
                    .Bind(6, iv.price_per_mwh())
                    .Bind(7, r->received_ms)
                    .Run();
      if (changed < 0) break;
    }
  } else if (const auto* r = std::get_if<PurgePricesRecord>(&record)) {
    changed = st.purge_prices.Bind(1, r->before_ms).Run();
  } else if (const auto* r = std::get_if<ScheduleRecord>(&record)) {
    const auto& q = r->request;
    const auto& a = r->result;
    changed = st.upsert_schedule.Bind(1, a.request_id())
                  .Bind(2, q.der_id())
                  .Bind(3, a.node())
                  .Bind(4, derms::v1::ScheduleStatus_Name(a.status()))
                  .Bind(5, r->received_ms)
                  .Bind(6, r->updated_ms)
                  .Bind(7, a.energy_kwh())
                  .Bind(8, a.cost())
                  .Bind(9, a.immediate_cost())
                  .Bind(10, a.shortfall_kwh())
                  .Bind(11, a.reason())
                  .Bind(12, a.command_id())
                  .BindBlob(13, q.SerializeAsString())
                  .BindBlob(14, a.SerializeAsString())
                  .Run();
    if (changed >= 0) {
      changed = st.insert_schedule_event.Bind(1, a.request_id())
                    .Bind(2, derms::v1::ScheduleStatus_Name(a.status()))
                    .Bind(3, r->updated_ms)
                    .Bind(4, a.reason())
                    .Run();
    }
  } else if (const auto* r = std::get_if<HistoryWriteRecord>(&record)) {
    changed = WriteHistory(*r);
  } else if (const auto* r = std::get_if<ExpireRecord>(&record)) {
    if (r->resolution_s == 0) {
      changed = st.expire_telemetry.Bind(1, r->before_ms).Bind(2, r->limit).Run();
    } else {
      changed = st.expire_chunks.Bind(1, r->resolution_s)
                    .Bind(2, r->before_ms)
                    .Bind(3, r->limit)
                    .Bind(4, history::ChunkSpanMs(r->resolution_s))
                    .Run();
      if (changed >= 0) {
        int open = st.expire_open.Bind(1, r->resolution_s).Bind(2, r->before_ms).Run();
        changed = open < 0 ? open : changed + open;
      }
    }
    if (changed > 0) counters_.expired += static_cast<uint64_t>(changed);
    changed = changed < 0 ? changed : 0;  // not new rows
  } else if (const auto* r = std::get_if<VderMembersRecord>(&record)) {
    changed = st.clear_members.Run();
    for (const auto& [vder_id, ders] : r->members) {
      for (const auto& der_id : ders) {
        if (changed < 0) break;
        changed = st.insert_member.Bind(1, vder_id).Bind(2, der_id).Run();
      }
    }
  } else if (const auto* r = std::get_if<EventRecord>(&record)) {
    changed = st.insert_event.Bind(1, r->kind)
                  .Bind(2, r->name)
                  .Bind(3, r->timestamp_ms)
                  .Bind(4, r->payload_json)
                  .Run();
  }
  if (changed < 0) {
    ++counters_.errors;
  } else if (changed > 0) {
    ++counters_.committed;
  }
}

int Store::WriteHistory(const HistoryWriteRecord& r) {
  Statements& st = *statements_;
  int changed = 0;
  for (const RollupRow& row : r.open_rows) {
    const history::Bucket& b = row.bucket;
    Stmt& q = st.upsert_open;
    q.Bind(1, row.resolution_s)
        .Bind(2, row.kind)
        .Bind(3, row.id)
        .Bind(4, b.start_ms)
        .Bind(5, static_cast<int64_t>(b.samples))
        .Bind(6, b.availability)
        .Bind(7, b.min_kw)
        .Bind(8, b.max_kw)
        .Bind(9, b.mean_kw)
        .Bind(10, b.export_kwh)
        .Bind(11, b.import_kwh);
    if (b.soc_pct) {
      q.Bind(12, *b.soc_pct);
    } else {
      q.BindNull(12);
    }
    if (q.Bind(13, b.capacity_kw).Run() < 0) return -1;
    ++changed;
  }
  for (const ChunkRow& c : r.chunks) {
    if (st.upsert_chunk.Bind(1, c.resolution_s)
                .Bind(2, c.kind)
                .Bind(3, c.id)
                .Bind(4, c.chunk_ms)
                .Bind(5, c.buckets)
                .BindBlob(6, c.data)
                .Run() < 0 ||
        st.delete_sealed.Bind(1, c.resolution_s)
                .Bind(2, c.kind)
                .Bind(3, c.id)
                .Bind(4, c.chunk_ms)
                .Bind(5, c.chunk_ms + history::ChunkSpanMs(c.resolution_s))
                .Run() < 0) {
      return -1;
    }
    ++changed;
  }
  for (const auto& [der_id, bucket_ms] : r.handled_late) {
    if (st.handled_late.Bind(1, der_id).Bind(2, bucket_ms).Run() < 0) return -1;
  }
  for (const auto& [key, value] : r.state) {
    if (st.set_state.Bind(1, key).Bind(2, value).Run() < 0) return -1;
  }
  return changed;
}

}  // namespace derms::storage
