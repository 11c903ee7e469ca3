#include "cloud_aggregator/storage/store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <limits>
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
-- Telemetry that broke a plausibility rule (reason, detail): kept apart, so
-- never rolled up; a sample is kept once per reason (a journal replay or a
-- redelivery repeats it). Created here on a database made before it existed.
CREATE TABLE IF NOT EXISTS telemetry_quarantine (
  id INTEGER PRIMARY KEY, der_id TEXT NOT NULL, seq INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, reason TEXT NOT NULL,
  detail TEXT NOT NULL, active_power_kw REAL, is_historical INTEGER NOT NULL,
  payload BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_quarantine_once
  ON telemetry_quarantine (der_id, seq, reason);
CREATE INDEX IF NOT EXISTS telemetry_quarantine_by_time ON telemetry_quarantine (received_ms);
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
PRAGMA user_version = 6;
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

// A failure that belongs to one record and would fail the same way on every
// retry: a constraint, a type, a value too big. Everything else is taken for
// a storage failure (the disk, the file, the lock, memory): the batch is
// rolled back and retried whole. Unknown codes count as storage failures:
// holding a record too long is recoverable, dropping it is not.
// SQLITE_CORRUPT and SQLITE_NOTADB too: a retry will not mend the file, but
// refusing record by record would release the journal for samples never
// stored; held, they stay in the journal and status says the database is
// corrupt until an operator restores it.
bool IsDataError(int code) {
  switch (code & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_ERROR:  // our SQL is checked at prepare: a bad value bound
      return true;
    default:
      return false;
  }
}

// The writer's connection, and the first statement failure of what is being
// written: a record's statements (or BEGIN, COMMIT) report here, so no
// failure goes unseen however the caller uses a statement's result.
struct WriteConnection {
  explicit WriteConnection(sqlite3* connection) : db(connection) {}

  sqlite3* db;
  int code = SQLITE_OK;  // extended result code of the first failure since Clear
  std::string message;   // SQLite's message for it

  void Clear() {
    code = SQLITE_OK;
    message.clear();
  }
  // A storage failure after a data error still fails the batch: the worse
  // of the two is kept.
  void Fail() {
    int now = sqlite3_extended_errcode(db);
    if (now == SQLITE_OK) now = SQLITE_ERROR;
    if (code != SQLITE_OK && (!IsDataError(code) || IsDataError(now))) return;
    code = now;
    message = sqlite3_errmsg(db);
  }
};

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt(WriteConnection* conn, const char* sql) : conn_(conn) {
    if (sqlite3_prepare_v3(conn->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) !=
        SQLITE_OK) {
      spdlog::critical("storage: cannot prepare '{}': {}", sql, sqlite3_errmsg(conn->db));
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
  // Runs the statement; returns rows changed, or -1 on error (reported to
  // the connection, which the writer checks after each record).
  int Run() {
    int rc = sqlite3_step(stmt_);
    int changed = rc == SQLITE_DONE ? sqlite3_changes(conn_->db) : -1;
    if (rc != SQLITE_DONE) conn_->Fail();
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return changed;
  }
  // Runs a query of one integer column; nullopt when there is no row.
  std::optional<int64_t> QueryInt() {
    std::optional<int64_t> out;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      out = sqlite3_column_int64(stmt_, 0);
    } else if (rc != SQLITE_DONE) {
      conn_->Fail();
    }
    sqlite3_reset(stmt_);
    return out;
  }

 private:
  WriteConnection* conn_;
  sqlite3_stmt* stmt_ = nullptr;
};

const char* CodeName(int code) {
  switch (code & 0xff) {
    case SQLITE_ERROR:
      return "SQLITE_ERROR";
    case SQLITE_PERM:
      return "SQLITE_PERM";
    case SQLITE_ABORT:
      return "SQLITE_ABORT";
    case SQLITE_BUSY:
      return "SQLITE_BUSY";
    case SQLITE_LOCKED:
      return "SQLITE_LOCKED";
    case SQLITE_NOMEM:
      return "SQLITE_NOMEM";
    case SQLITE_READONLY:
      return "SQLITE_READONLY";
    case SQLITE_INTERRUPT:
      return "SQLITE_INTERRUPT";
    case SQLITE_IOERR:
      return "SQLITE_IOERR";
    case SQLITE_CORRUPT:
      return "SQLITE_CORRUPT";
    case SQLITE_FULL:
      return "SQLITE_FULL";
    case SQLITE_CANTOPEN:
      return "SQLITE_CANTOPEN";
    case SQLITE_PROTOCOL:
      return "SQLITE_PROTOCOL";
    case SQLITE_SCHEMA:
      return "SQLITE_SCHEMA";
    case SQLITE_TOOBIG:
      return "SQLITE_TOOBIG";
    case SQLITE_CONSTRAINT:
      return "SQLITE_CONSTRAINT";
    case SQLITE_MISMATCH:
      return "SQLITE_MISMATCH";
    case SQLITE_NOLFS:
      return "SQLITE_NOLFS";
    case SQLITE_NOTADB:
      return "SQLITE_NOTADB";
    case SQLITE_RANGE:
      return "SQLITE_RANGE";
    default:
      return "SQLITE_?";
  }
}

// "database or disk is full (SQLITE_FULL, code 13)"
std::string Describe(const WriteConnection& conn) {
  return fmt::format("{} ({}, code {})", conn.message, CodeName(conn.code), conn.code);
}

// What a record is, for a person reading a storage error.
std::string Describe(const Record& record) {
  struct Visitor {
    std::string operator()(const BirthRecord& r) const {
      return fmt::format("birth of der '{}'", r.birth.der_id());
    }
    std::string operator()(const StatusRecord& r) const {
      return fmt::format("status change of der '{}'", r.der_id);
    }
    std::string operator()(const TelemetryRecord& r) const {
      return fmt::format("telemetry from der '{}' seq {}", r.telemetry.der_id(), r.telemetry.seq());
    }
    std::string operator()(const QuarantineRecord& r) const {
      return fmt::format("quarantined telemetry from der '{}' seq {}", r.telemetry.der_id(),
                         r.telemetry.seq());
    }
    std::string operator()(const ControlRecord& r) const {
      return fmt::format("control '{}' to der '{}'", r.control.command_id(), r.der_id);
    }
    std::string operator()(const ResponseRecord& r) const {
      return fmt::format("response to '{}' from der '{}'", r.response.command_id(), r.der_id);
    }
    std::string operator()(const GridStatusRecord& r) const {
      return fmt::format("grid status of substation '{}'", r.grid.substation_id());
    }
    std::string operator()(const DispatchRunRecord& r) const {
      return fmt::format("dispatch run {}", r.run_id);
    }
    std::string operator()(const PriceForecastRecord& r) const {
      return fmt::format("price forecast for node '{}'", r.forecast.node());
    }
    std::string operator()(const PurgePricesRecord&) const { return "price purge"; }
    std::string operator()(const ScheduleRecord& r) const {
      return fmt::format("schedule request '{}'", r.result.request_id());
    }
    std::string operator()(const HistoryWriteRecord& r) const {
      return fmt::format("rollups ({} buckets, {} chunks)", r.open_rows.size(), r.chunks.size());
    }
    std::string operator()(const ExpireRecord&) const { return "retention"; }
    std::string operator()(const VderMembersRecord&) const { return "virtual DER membership"; }
    std::string operator()(const EventRecord& r) const {
      return fmt::format("event {} '{}'", r.kind, r.name);
    }
    std::string operator()(const TableSchemaRecord& r) const {
      return fmt::format("schema '{}'", r.create_sql.substr(0, 60));
    }
    std::string operator()(const TableRowRecord& r) const {
      return fmt::format("row of table '{}'", r.table);
    }
  };
  return std::visit(Visitor{}, record);
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The history_state key under which each transaction records its batch id:
// after a COMMIT that reported an error, the writer reads it back before
// retrying, so a batch is never written twice even if the commit did land.
constexpr const char* kBatchKey = "store_batch";

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

struct Store::Statements {
  explicit Statements(sqlite3* raw)
      : conn(raw),
        upsert_der(&conn,
                   "INSERT INTO ders VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15) "
                   "ON CONFLICT(der_id) DO UPDATE SET der_type=?2, substation_id=?3, "
                   "feeder_id=?4, provider_id=?5, max_discharge_kw=?6, max_charge_kw=?7, "
                   "energy_capacity_kwh=?8, latitude=?9, longitude=?10, tags=?11, model=?12, "
                   "telemetry_interval_s=?13, bd_seq=?14, born_ms=?15 WHERE ?14 >= bd_seq"),
        insert_birth(&conn, "INSERT OR IGNORE INTO births VALUES (?,?,?,?,?)"),
        insert_status(&conn,
                      "INSERT INTO status_changes (der_id, online, bd_seq, cause, timestamp_ms, "
                      "received_ms) VALUES (?,?,?,?,?,?)"),
        insert_telemetry(&conn,
                         "INSERT OR IGNORE INTO telemetry VALUES "
                         "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
        insert_quarantine(&conn,
                          "INSERT OR IGNORE INTO telemetry_quarantine (der_id, seq, timestamp_ms, "
                          "received_ms, reason, detail, active_power_kw, is_historical, payload) "
                          "VALUES (?,?,?,?,?,?,?,?,?)"),
        insert_control(&conn, "INSERT OR IGNORE INTO controls VALUES (?,?,?,?,?,?,?,?,?,?)"),
        insert_response(&conn,
                        "INSERT INTO responses (command_id, der_id, status, applied_kw, reason, "
                        "interval_index, timestamp_ms, received_ms) VALUES (?,?,?,?,?,?,?,?)"),
        insert_grid(&conn,
                    "INSERT INTO grid_status (substation_id, timestamp_ms, received_ms, "
                    "frequency_hz, voltage_pu, load_kw, supply_kw) VALUES (?,?,?,?,?,?,?)"),
        insert_run(&conn,
                   "INSERT OR REPLACE INTO dispatch_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                   "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
        insert_allocation(&conn,
                          "INSERT OR REPLACE INTO dispatch_allocations VALUES "
                          "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
        insert_price(&conn,
                     "INSERT INTO price_forecasts (node, issued_ms, kind, start_ms, duration_s, "
                     "price_per_mwh, received_ms) VALUES (?,?,?,?,?,?,?)"),
        purge_prices(&conn, "DELETE FROM price_forecasts WHERE start_ms + duration_s * 1000 < ?"),
        upsert_schedule(&conn,
                        "INSERT INTO schedule_requests VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,"
                        "?12,?13,?14) ON CONFLICT(request_id) DO UPDATE SET status=?4, "
                        "updated_ms=?6, energy_kwh=?7, cost=?8, immediate_cost=?9, "
                        "shortfall_kwh=?10, reason=?11, command_id=?12, result=?14"),
        insert_schedule_event(&conn, "INSERT INTO schedule_events VALUES (?,?,?,?)"),
        mark_late(&conn, "INSERT OR IGNORE INTO rollup_late VALUES (?,?)"),
        handled_late(&conn, "DELETE FROM rollup_late WHERE der_id = ? AND bucket_ms = ?"),
        upsert_open(&conn,
                    "INSERT OR REPLACE INTO rollups_open VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"),
        upsert_chunk(&conn, "INSERT OR REPLACE INTO rollup_chunks VALUES (?,?,?,?,?,?)"),
        delete_sealed(&conn,
                      "DELETE FROM rollups_open WHERE resolution_s = ?1 AND kind = ?2 AND id = ?3 "
                      "AND bucket_ms >= ?4 AND bucket_ms < ?5"),
        set_state(&conn, "INSERT OR REPLACE INTO history_state VALUES (?,?)"),
        expire_telemetry(&conn,
                         "DELETE FROM telemetry WHERE (der_id, seq) IN (SELECT der_id, seq FROM "
                         "telemetry WHERE timestamp_ms < ?1 ORDER BY timestamp_ms LIMIT ?2)"),
        expire_quarantine(&conn,
                          "DELETE FROM telemetry_quarantine WHERE id IN (SELECT id FROM "
                          "telemetry_quarantine WHERE received_ms < ?1 ORDER BY received_ms "
                          "LIMIT ?2)"),
        expire_chunks(&conn,
                      "DELETE FROM rollup_chunks WHERE (resolution_s, kind, id, chunk_ms) IN "
                      "(SELECT resolution_s, kind, id, chunk_ms FROM rollup_chunks WHERE "
                      "resolution_s = ?1 AND chunk_ms + ?4 <= ?2 LIMIT ?3)"),
        // ?2 is a chunk boundary: only whole chunks expire.
        expire_open(&conn, "DELETE FROM rollups_open WHERE resolution_s = ?1 AND bucket_ms < ?2"),
        clear_members(&conn, "DELETE FROM vder_members"),
        insert_member(&conn, "INSERT OR IGNORE INTO vder_members VALUES (?,?)"),
        insert_event(&conn,
                     "INSERT INTO events (kind, name, timestamp_ms, payload) VALUES (?,?,?,?)"),
        begin(&conn, "BEGIN"),
        commit(&conn, "COMMIT"),
        rollback(&conn, "ROLLBACK"),
        set_batch(&conn, "INSERT OR REPLACE INTO history_state VALUES ('store_batch', ?)"),
        get_batch(&conn, "SELECT value FROM history_state WHERE key = 'store_batch'") {}
  WriteConnection conn;  // first: the statements point at it
  Stmt upsert_der, insert_birth, insert_status, insert_telemetry, insert_quarantine, insert_control,
      insert_response, insert_grid, insert_run, insert_allocation, insert_price, purge_prices,
      upsert_schedule, insert_schedule_event, mark_late, handled_late, upsert_open, upsert_chunk,
      delete_sealed, set_state, expire_telemetry, expire_quarantine, expire_chunks, expire_open,
      clear_members, insert_member, insert_event, begin, commit, rollback, set_batch, get_batch;
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
  batch_id_ = statements_->get_batch.QueryInt().value_or(0);
  writer_ = std::thread([this] { WriterLoop(); });
}

Store::~Store() {
  {
    std::lock_guard<std::mutex> lock(health_mutex_);
    closing_ = true;
    close_deadline_ = std::chrono::steady_clock::now() + options_.close_timeout;
    health_cv_.notify_all();
  }
  queue_.Close();
  if (writer_.joinable()) writer_.join();
  row_statements_.clear();
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

std::map<std::string, derms::v1::DerBirth> Store::LoadBirths() const {
  sqlite3* db = nullptr;
  std::map<std::string, derms::v1::DerBirth> out;
  if (sqlite3_open_v2(options_.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 1000);
    sqlite3_stmt* stmt = nullptr;
    // Ascending bd_seq: the newest birth of a DER is the one left in the map.
    if (sqlite3_prepare_v2(db, "SELECT der_id, payload FROM births ORDER BY der_id, bd_seq", -1,
                           &stmt, nullptr) == SQLITE_OK) {
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        derms::v1::DerBirth b;
        const void* blob = sqlite3_column_blob(stmt, 1);
        int size = sqlite3_column_bytes(stmt, 1);
        const auto* id = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        if (id != nullptr && blob != nullptr && b.ParseFromArray(blob, size)) {
          out[id] = std::move(b);
        }
      }
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return out;
}

void Store::Add(Record record) {
  // Counted before it is queued, so that Held() never sees it committed
  // before it was accepted.
  ++accepted_;
  if (!queue_.Push(Item(std::move(record)))) {
    ++abandoned_;
    spdlog::error("storage: a record added after the store closed is not stored");
  }
}

Status Store::Flush() {
  auto done = std::make_shared<bool>(false);  // GUARDED_BY(health_mutex_)
  uint64_t failures_before = 0;
  {
    std::lock_guard<std::mutex> lock(health_mutex_);
    if (failing_) return Status::Error("storage_error", last_error_);
    failures_before = failures_;
  }
  auto ran = [this, done] {
    std::lock_guard<std::mutex> lock(health_mutex_);
    *done = true;
    health_cv_.notify_all();
  };
  if (!queue_.Push(Item(Barrier{std::move(ran), true}))) {
    return Status::Error("storage_error", "the store is closed");
  }
  std::unique_lock<std::mutex> lock(health_mutex_);
  // A failed commit answers at once (leveldb returns bg_error_ to writers):
  // the retries may take as long as the disk stays full, and a caller
  // waiting on them could not stop (the history jobs' thread, shutdown).
  health_cv_.wait(lock, [&] { return *done || gave_up_ || failures_ != failures_before; });
  if (*done) return Status::Ok();
  if (gave_up_) {
    return Status::Error("storage_error",
                         fmt::format("the store closed before committing: {}", last_error_));
  }
  return Status::Error("storage_error", last_error_);
}

void Store::AfterCommit(std::function<void()> done) {
  queue_.Push(Item(Barrier{std::move(done), false}));
}

uint64_t Store::Held() const {
  // Committed and abandoned are read before accepted: each only grows, and
  // what they count was accepted first, so the difference never wraps.
  uint64_t gone = committed_.load() + abandoned_.load();
  uint64_t accepted = accepted_.load();
  return accepted > gone ? accepted - gone : 0;
}

StoreHealth Store::health() const {
  StoreHealth h;
  h.committed = committed_;
  h.held = Held();
  h.accepted = accepted_;
  h.retries = retries_;
  std::lock_guard<std::mutex> lock(health_mutex_);
  h.failing = failing_;
  h.last_error = last_error_;
  h.failing_since_ms = h.failing ? failing_since_ms_ : 0;
  return h;
}

bool Store::ShouldPause() const { return failing_ && Held() > options_.pause_records; }

bool Store::Gather(std::vector<Item>* batch) {
  std::optional<Item> first;
  while (!first) {
    first = queue_.PopFor(std::chrono::milliseconds(200));
    if (!first && queue_.closed() && queue_.Size() == 0) return false;
  }
  batch->push_back(std::move(*first));
  auto deadline = std::chrono::steady_clock::now() + options_.gather;
  auto is_barrier = [](const Item& item) {
    const auto* b = std::get_if<Barrier>(&item);
    return b != nullptr && b->urgent;
  };
  bool flush_waiting = is_barrier(batch->front());
  while (!flush_waiting && batch->size() < options_.batch_max && !queue_.closed()) {
    size_t before = batch->size();
    queue_.DrainTo(batch, options_.batch_max - batch->size());
    // A Flush is waiting for this commit: do not keep it waiting.
    flush_waiting = std::any_of(batch->begin() + before, batch->end(), is_barrier);
    if (flush_waiting) break;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        deadline - now, std::chrono::milliseconds(5)));
  }
  queue_.DrainTo(batch, options_.batch_max - batch->size());
  return true;
}

void Store::WriterLoop() {
  std::vector<Item> batch;
  while (true) {
    batch.clear();
    if (!Gather(&batch)) return;
    size_t records = 0;
    for (const auto& item : batch) records += std::holds_alternative<Record>(item) ? 1 : 0;
    ++batch_id_;
    // The same batch, whole, until it commits: new records wait in the
    // queue behind it, and so do the barriers after it.
    auto backoff = options_.retry_initial;
    BatchCounts counts;
    for (int attempt = 0;; ++attempt) {
      Status s = CommitBatch(batch, attempt, &counts);
      if (s.ok()) break;
      NoteFailure(s, records);
      if (!WaitToRetry(&backoff)) {
        GiveUp(&batch);
        return;
      }
      ++retries_;
    }
    counters_.committed += counts.rows;
    counters_.duplicates += counts.duplicates;
    counters_.telemetry += counts.telemetry;
    counters_.errors += counts.errors;
    counters_.expired += counts.expired;
    ++counters_.transactions;
    committed_ += records;
    if (failing_) {
      std::lock_guard<std::mutex> lock(health_mutex_);
      failing_ = false;
      spdlog::warn(
          "storage: recovered after {:.1f} s and {} retries; the held batch of {} records is "
          "committed",
          static_cast<double>(WallMs() - failing_since_ms_) / 1000, retries_.load(), records);
      failing_since_ms_ = 0;
    }
    for (auto& item : batch) {
      if (auto* b = std::get_if<Barrier>(&item)) b->done();
    }
  }
}

Status Store::CommitBatch(const std::vector<Item>& batch, int attempt, BatchCounts* counts) {
  Statements& st = *statements_;
  WriteConnection& conn = st.conn;
  const size_t size = batch.size();
  auto failed = [&](const std::string& what) {
    Status s = Status::Error("storage_error", fmt::format("{}: {}", what, Describe(conn)));
    // SQLite may have rolled the transaction back itself (SQLITE_FULL,
    // IOERR, NOMEM); if not, nothing of the attempt may stay.
    if (!sqlite3_get_autocommit(conn.db)) {
      conn.Clear();
      st.rollback.Run();
      if (conn.code != SQLITE_OK) {
        spdlog::error("storage: ROLLBACK failed: {}", Describe(conn));
      }
    }
    return s;
  };
  conn.Clear();
  // A failed ROLLBACK can leave a transaction open: it goes before we begin.
  if (!sqlite3_get_autocommit(conn.db)) st.rollback.Run();
  if (attempt > 0) {
    // A COMMIT that reported an error may still have landed (an I/O error
    // after the commit record was written): then this batch is done, and
    // writing it again would store its rowid-keyed rows twice.
    conn.Clear();
    std::optional<int64_t> last = st.get_batch.QueryInt();
    if (conn.code != SQLITE_OK) return failed("reading the last committed batch");
    if (last == batch_id_) return Status::Ok();
  }
  *counts = BatchCounts{};
  conn.Clear();
  st.begin.Run();
  if (conn.code != SQLITE_OK) return failed(fmt::format("BEGIN of a batch of {} items", size));
  for (const auto& item : batch) {
    const auto* record = std::get_if<Record>(&item);
    if (record == nullptr) continue;
    conn.Clear();
    int code = Write(*record, counts);
    if (code == SQLITE_OK) continue;
    if (IsDataError(code) && !sqlite3_get_autocommit(conn.db)) {
      // The statement alone was undone; the transaction goes on.
      ++counts->errors;
      spdlog::error("storage: {} not stored: {}", Describe(*record), Describe(conn));
      continue;
    }
    return failed(fmt::format("writing {} in a batch of {} items", Describe(*record), size));
  }
  conn.Clear();
  st.set_batch.Bind(1, batch_id_).Run();
  if (conn.code != SQLITE_OK) return failed(fmt::format("marking a batch of {} items", size));
  st.commit.Run();
  if (conn.code != SQLITE_OK) return failed(fmt::format("COMMIT of a batch of {} items", size));
  return Status::Ok();
}

void Store::NoteFailure(const Status& error, size_t batch_records) {
  std::lock_guard<std::mutex> lock(health_mutex_);
  bool first = !failing_;
  bool changed = error.message() != last_error_;
  last_error_ = error.message();
  ++failures_;
  if (first) failing_since_ms_ = WallMs();
  failing_ = true;
  health_cv_.notify_all();  // Flush callers get the error now
  const uint64_t held = Held();
  // Loud once, then now and then: a full disk must not fill the log too.
  if (first) {
    spdlog::error(
        "storage failing: {}; the batch of {} records is rolled back, held in memory and "
        "retried until it commits; nothing behind it is released",
        last_error_, batch_records);
  } else if (changed || retries_ % 20 == 0) {
    spdlog::warn("storage still failing after {} retries ({} records held): {}", retries_.load(),
                 held, last_error_);
  }
  if (held > options_.pause_records && retries_ % 20 == 0) {
    spdlog::warn(
        "storage: {} records held in memory, over pause_records {}: ingest pauses until the "
        "store recovers",
        held, options_.pause_records);
  }
}

bool Store::WaitToRetry(std::chrono::milliseconds* backoff) {
  std::unique_lock<std::mutex> lock(health_mutex_);
  auto now = std::chrono::steady_clock::now();
  auto wake = now + *backoff;
  const bool was_closing = closing_;
  if (closing_) {
    if (now >= close_deadline_) return false;
    wake = std::min(wake, close_deadline_);
  }
  // Closing cuts the wait short: one more try at once, then the backoff
  // within what is left of close_timeout.
  health_cv_.wait_until(lock, wake, [&] { return closing_ != was_closing; });
  *backoff = std::min(*backoff * 2, options_.retry_max);
  return true;
}

void Store::GiveUp(std::vector<Item>* batch) {
  queue_.DrainTo(batch, std::numeric_limits<size_t>::max());
  size_t records = 0, telemetry = 0, barriers = 0;
  for (const auto& item : *batch) {
    if (const auto* r = std::get_if<Record>(&item)) {
      ++records;
      telemetry += std::holds_alternative<TelemetryRecord>(*r) ? 1 : 0;
    } else {
      ++barriers;
    }
  }
  abandoned_ += records;
  std::lock_guard<std::mutex> lock(health_mutex_);
  spdlog::critical(
      "storage: closing while still failing after {} retries: {} records NOT committed to '{}' "
      "({} telemetry: the inbox journal keeps those it holds for the next start); {} waiting "
      "callbacks not run. Last error: {}",
      retries_.load(), records, options_.path, telemetry, barriers, last_error_);
  gave_up_ = true;
  health_cv_.notify_all();
  batch->clear();
}

int Store::Write(const Record& record, BatchCounts* counts) {
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
    if (changed == 0) ++counts->duplicates;
    if (changed >= 0) ++counts->telemetry;
    // A sample for a bucket already rolled up: the history jobs redo it.
    int64_t bucket_ms = history::BucketStart(t.timestamp_ms(), history::k5Min);
    if (changed > 0 && bucket_ms < rollup_watermark_ms_.load(std::memory_order_relaxed)) {
      st.mark_late.Bind(1, t.der_id()).Bind(2, bucket_ms).Run();
    }
  } else if (const auto* r = std::get_if<QuarantineRecord>(&record)) {
    const auto& t = r->telemetry;
    changed = st.insert_quarantine.Bind(1, t.der_id())
                  .Bind(2, static_cast<int64_t>(t.seq()))
                  .Bind(3, t.timestamp_ms())
                  .Bind(4, r->received_ms)
                  .Bind(5, r->reason)
                  .Bind(6, r->detail)
                  .Bind(7, t.active_power_kw())
                  .Bind(8, static_cast<int64_t>(t.is_historical()))
                  .BindBlob(9, t.SerializeAsString())
                  .Run();
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
      row.Bind(9, a.cost)
          .Bind(10, a.target_kw)
          .Bind(11, a.applied_kw)
          .Bind(12, a.state)
          .Bind(13, a.command_id)
          .Bind(14, a.reason)
          .Run();
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
      if (changed >= 0) {
        int quarantined = st.expire_quarantine.Bind(1, r->before_ms).Bind(2, r->limit).Run();
        changed = quarantined < 0 ? quarantined : changed + quarantined;
      }
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
    if (changed > 0) counts->expired += static_cast<uint64_t>(changed);
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
                  .Run();  } else if (const auto* r = std::get_if<TableSchemaRecord>(&record)) {
    if (sqlite3_exec(st.conn.db, r->create_sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      st.conn.Fail();
    }
  } else if (const auto* r = std::get_if<TableRowRecord>(&record)) {
    changed = WriteRow(*r);
  }
  if (changed > 0) ++counts->rows;
  return st.conn.code;
}

namespace {

bool IsIdentifier(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

int Store::WriteRow(const TableRowRecord& r) {
  Statements& st = *statements_;
  bool names_ok = IsIdentifier(r.table) && !r.columns.empty() && r.columns.size() == r.values.size();
  for (const auto& c : r.columns) names_ok = names_ok && IsIdentifier(c);
  if (!names_ok) {
    // A bug in the module that built it, not a storage failure: refused
    // like a constraint (counted, the rest of the batch commits).
    if (st.conn.code == SQLITE_OK) {
      st.conn.code = SQLITE_CONSTRAINT;
      st.conn.message = fmt::format(
          "row for table '{}': names must be identifiers, one value per column", r.table);
    }
    return -1;
  }
  std::string key = fmt::format("{}{}({})", r.replace ? "R:" : "I:", r.table, fmt::join(r.columns, ","));
  auto it = row_statements_.find(key);
  if (it == row_statements_.end()) {
    std::vector<std::string> marks(r.columns.size(), "?");
    std::string sql = fmt::format("INSERT {}INTO {} ({}) VALUES ({})", r.replace ? "OR REPLACE " : "",
                                  r.table, fmt::join(r.columns, ", "), fmt::join(marks, ", "));
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(st.conn.db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                           nullptr) != SQLITE_OK) {
      st.conn.Fail();  // no such table or column: refused as a data error
      sqlite3_finalize(stmt);
      return -1;
    }
    it = row_statements_.emplace(key, RowStatement(stmt, sqlite3_finalize)).first;
  }
  sqlite3_stmt* stmt = it->second.get();
  for (size_t i = 0; i < r.values.size(); ++i) {
    int at = static_cast<int>(i) + 1;
    const RowValue& v = r.values[i];
    if (const auto* n = std::get_if<int64_t>(&v)) {
      sqlite3_bind_int64(stmt, at, *n);
    } else if (const auto* d = std::get_if<double>(&v)) {
      sqlite3_bind_double(stmt, at, *d);
    } else if (const auto* t = std::get_if<std::string>(&v)) {
      sqlite3_bind_text(stmt, at, t->data(), static_cast<int>(t->size()), SQLITE_TRANSIENT);
    } else {
      sqlite3_bind_null(stmt, at);
    }
  }
  int rc = sqlite3_step(stmt);
  int changed = rc == SQLITE_DONE ? sqlite3_changes(st.conn.db) : -1;
  if (rc != SQLITE_DONE) st.conn.Fail();
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return changed;
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
