#include "edge_agent/outbox/sqlite_storage.h"

#include <fmt/format.h>
#include <sqlite3.h>

namespace derms::edge {
namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO outbox_counters (name, value) VALUES ('dropped', 0);
)sql";

// Resets a statement however the scope is left.
struct Reset {
  sqlite3_stmt* stmt;
  ~Reset() {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  }
};

}  // namespace

StatusOr<std::unique_ptr<SqliteOutboxStorage>> SqliteOutboxStorage::Open(const std::string& path) {
  std::unique_ptr<SqliteOutboxStorage> s(new SqliteOutboxStorage(path));
  if (sqlite3_open_v2(path.c_str(), &s->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    return s->Error("cannot be opened");
  }
  // Exclusive: no other process may use the file while this one holds it
  // (the lock goes with the process, even on SIGKILL). WAL with FULL sync:
  // each commit reaches the disk before it returns.
  // A small page cache: records are appended at one end and read from the
  // other, and the agent's footprint matters more than repeated reads.
  for (const char* pragma : {"PRAGMA locking_mode=EXCLUSIVE", "PRAGMA journal_mode=WAL",
                             "PRAGMA synchronous=FULL", "PRAGMA cache_size=-256"}) {
    Status st = s->Exec(pragma);
    if (!st.ok()) return st;
  }
  int version = -1;
  {
    sqlite3_stmt* q = nullptr;
    Status st = s->Prepare("PRAGMA user_version", &q);
    if (!st.ok()) return st;
    if (sqlite3_step(q) == SQLITE_ROW) version = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
  }
  if (version != 0 && version != kSchemaVersion) {
    return Status::Error("outbox_error",
                         fmt::format("outbox '{}': schema version {} is not {} (a newer agent's?)",
                                     path, version, kSchemaVersion));
  }
  Status st = s->Exec(kSchema);
  if (!st.ok()) return st;
  st = s->Exec(fmt::format("PRAGMA user_version={}", kSchemaVersion).c_str());
  if (!st.ok()) return st;
  {
    sqlite3_stmt* q = nullptr;
    st = s->Prepare(
        "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0), "
        "(SELECT value FROM outbox_counters WHERE name='dropped') FROM outbox",
        &q);
    if (!st.ok()) return st;
    if (sqlite3_step(q) == SQLITE_ROW) {
      s->totals_.rows = static_cast<uint64_t>(sqlite3_column_int64(q, 0));
      s->totals_.bytes = static_cast<uint64_t>(sqlite3_column_int64(q, 1));
      s->totals_.dropped = static_cast<uint64_t>(sqlite3_column_int64(q, 2));
    }
    sqlite3_finalize(q);
  }
  for (auto [sql, stmt] : {
           std::pair<const char*, sqlite3_stmt**>{
               "INSERT INTO outbox (seq, timestamp_ms, payload) VALUES (?, ?, ?)", &s->append_},
           {"SELECT id, seq, timestamp_ms, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            &s->read_after_},
           {"DELETE FROM outbox WHERE id = ? RETURNING length(payload)", &s->remove_},
           {"UPDATE outbox_counters SET value = value + ? WHERE name = 'dropped'",
            &s->add_dropped_},
       }) {
    st = s->Prepare(sql, stmt);
    if (!st.ok()) return st;
  }
  return s;
}

SqliteOutboxStorage::~SqliteOutboxStorage() {
  for (sqlite3_stmt* stmt : {append_, read_after_, remove_, add_dropped_}) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Status SqliteOutboxStorage::Error(const std::string& what) const {
  return Status::Error("outbox_error", fmt::format("outbox '{}' {}: {}", path_, what,
                                                   db_ ? sqlite3_errmsg(db_) : "out of memory"));
}

Status SqliteOutboxStorage::Exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Error(fmt::format("'{}' failed", sql));
  }
  return Status::Ok();
}

Status SqliteOutboxStorage::Prepare(const char* sql, sqlite3_stmt** stmt) {
  if (sqlite3_prepare_v2(db_, sql, -1, stmt, nullptr) != SQLITE_OK) {
    return Error(fmt::format("cannot prepare '{}'", sql));
  }
  return Status::Ok();
}

StatusOr<int64_t> SqliteOutboxStorage::Append(uint64_t seq, int64_t timestamp_ms,
                                              const std::string& payload) {
  Reset reset{append_};
  sqlite3_bind_int64(append_, 1, static_cast<sqlite3_int64>(seq));
  sqlite3_bind_int64(append_, 2, timestamp_ms);
  sqlite3_bind_blob(append_, 3, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
  if (sqlite3_step(append_) != SQLITE_DONE) return Error("append failed");
  ++totals_.rows;
  totals_.bytes += payload.size();
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

StatusOr<std::vector<OutboxRecord>> SqliteOutboxStorage::ReadAfter(int64_t after_id, size_t limit) {
  Reset reset{read_after_};
  sqlite3_bind_int64(read_after_, 1, after_id);
  sqlite3_bind_int64(read_after_, 2, static_cast<sqlite3_int64>(limit));
  std::vector<OutboxRecord> out;
  int rc;
  while ((rc = sqlite3_step(read_after_)) == SQLITE_ROW) {
    OutboxRecord r;
    r.id = sqlite3_column_int64(read_after_, 0);
    r.seq = static_cast<uint64_t>(sqlite3_column_int64(read_after_, 1));
    r.timestamp_ms = sqlite3_column_int64(read_after_, 2);
    const void* blob = sqlite3_column_blob(read_after_, 3);
    int size = sqlite3_column_bytes(read_after_, 3);
    if (blob && size > 0) r.payload.assign(static_cast<const char*>(blob), size);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Error("read failed");
  return out;
}

Status SqliteOutboxStorage::Remove(const std::vector<int64_t>& ids, uint64_t dropped) {
  if (ids.empty() && dropped == 0) return Status::Ok();
  Status s = Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  uint64_t rows = 0, bytes = 0;
  for (int64_t id : ids) {
    Reset reset{remove_};
    sqlite3_bind_int64(remove_, 1, id);
    int rc = sqlite3_step(remove_);
    if (rc == SQLITE_ROW) {
      ++rows;
      bytes += static_cast<uint64_t>(sqlite3_column_int64(remove_, 0));
      rc = sqlite3_step(remove_);
    }
    if (rc != SQLITE_DONE) {
      s = Error("delete failed");
      break;
    }
  }
  if (s.ok() && dropped > 0) {
    Reset reset{add_dropped_};
    sqlite3_bind_int64(add_dropped_, 1, static_cast<sqlite3_int64>(dropped));
    if (sqlite3_step(add_dropped_) != SQLITE_DONE) s = Error("dropped counter update failed");
  }
  if (s.ok()) s = Exec("COMMIT");
  if (!s.ok()) {
    Status ignored = Exec("ROLLBACK");
    (void)ignored;  // the first error is the one worth reporting
    return s;
  }
  totals_.rows -= rows;
  totals_.bytes -= bytes;
  totals_.dropped += dropped;
  return Status::Ok();
}

}  // namespace derms::edge
