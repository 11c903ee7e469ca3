// OutboxStorage in a SQLite file on the edge: a record is on disk once
// Append returns (WAL with synchronous=FULL: a commit survives a kill and a
// power loss), and Remove is one transaction. The file is held with an
// exclusive lock, so a second agent started with the same file fails at
// Open instead of sending the same samples twice.
#ifndef DERMS_EDGE_AGENT_OUTBOX_SQLITE_STORAGE_H_
#define DERMS_EDGE_AGENT_OUTBOX_SQLITE_STORAGE_H_

#include <memory>
#include <string>

#include "edge_agent/outbox/storage.h"

struct sqlite3;
struct sqlite3_stmt;

namespace derms::edge {

// Not thread-safe: one owner.
class SqliteOutboxStorage : public OutboxStorage {
 public:
  // Opens or creates the outbox at `path` (its directory must exist). An
  // error names the file and what SQLite said.
  static StatusOr<std::unique_ptr<SqliteOutboxStorage>> Open(const std::string& path);
  ~SqliteOutboxStorage() override;
  SqliteOutboxStorage(const SqliteOutboxStorage&) = delete;
  SqliteOutboxStorage& operator=(const SqliteOutboxStorage&) = delete;

  StatusOr<int64_t> Append(uint64_t seq, int64_t timestamp_ms, const std::string& payload) override;
  StatusOr<std::vector<OutboxRecord>> ReadAfter(int64_t after_id, size_t limit) override;
  Status Remove(const std::vector<int64_t>& ids, uint64_t dropped) override;
  OutboxTotals Totals() const override { return totals_; }

 private:
  explicit SqliteOutboxStorage(std::string path) : path_(std::move(path)) {}
  Status Error(const std::string& what) const;
  Status Exec(const char* sql);
  Status Prepare(const char* sql, sqlite3_stmt** stmt);

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* append_ = nullptr;
  sqlite3_stmt* read_after_ = nullptr;
  sqlite3_stmt* remove_ = nullptr;
  sqlite3_stmt* add_dropped_ = nullptr;
  OutboxTotals totals_;  // mirrors the file after every successful call
};

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_OUTBOX_SQLITE_STORAGE_H_
