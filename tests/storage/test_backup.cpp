// Backups and restore against real SQLite files in temporary directories.
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cloud_aggregator/storage/backup.h"

namespace {

namespace fs = std::filesystem;
using derms::storage::BackupOptions;
using derms::storage::DbLock;
using derms::storage::ListBackups;
using derms::storage::Restore;
using derms::storage::RestoreOptions;
using derms::storage::RunBackup;
using derms::storage::VerifyBackup;

constexpr int64_t kNowMs = 1767225600000;  // 2026-01-01T00:00:00Z

// A fresh directory, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "derms-backup-test-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

// A connection for the test's own reads and writes.
class Conn {
 public:
  explicit Conn(const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    REQUIRE(sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) == SQLITE_OK);
  }
  ~Conn() { sqlite3_close_v2(db_); }
  sqlite3* get() const { return db_; }
  void Exec(const std::string& sql) const {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    INFO(sql << ": " << (err ? err : ""));
    sqlite3_free(err);
    REQUIRE(rc == SQLITE_OK);
  }
  std::string Text(const std::string& sql) const {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0)) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }
  int64_t Int(const std::string& sql) const { return std::stoll(Text(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

// A WAL database like the aggregator's: a rowid table with a BLOB column and
// an index, a WITHOUT ROWID table, a counter table and a virtual (FTS5) one.
void MakeSource(const std::string& path, int rows, int page_size = 4096) {
  Conn c(path);
  c.Exec("PRAGMA page_size = " + std::to_string(page_size));
  c.Exec("PRAGMA journal_mode = WAL");
  c.Exec(R"sql(
    CREATE TABLE events (id INTEGER PRIMARY KEY, der_id TEXT NOT NULL, kw REAL, payload BLOB);
    CREATE INDEX events_by_der ON events (der_id);
    CREATE TABLE readings (der_id TEXT NOT NULL, seq INTEGER NOT NULL, value REAL,
                           PRIMARY KEY (der_id, seq)) WITHOUT ROWID;
    CREATE TABLE totals (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
    INSERT INTO totals VALUES ('writer', 0);
    CREATE VIRTUAL TABLE notes USING fts5(body);
    INSERT INTO notes VALUES ('battery bat-7 replaced'), ('feeder f-2 maintenance');
  )sql");
  c.Exec("BEGIN");
  c.Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
         std::to_string(rows) +
         ") INSERT INTO events (der_id, kw, payload) SELECT 'der-' || (i % 97), i * 0.25, "
         "randomblob(200) FROM n");
  c.Exec("INSERT INTO readings SELECT der_id, id, kw / 3 FROM events");
  c.Exec("COMMIT");
}

// Every row of `table` in a fixed order, each value tagged with its type.
std::string DumpTable(const Conn& c, const std::string& table) {
  int columns = static_cast<int>(c.Int("SELECT count(*) FROM pragma_table_info('" + table + "')"));
  std::string order;
  for (int i = 1; i <= columns; ++i) order += (i > 1 ? "," : "") + std::to_string(i);
  sqlite3_stmt* stmt = nullptr;
  std::string sql = "SELECT * FROM \"" + table + "\" ORDER BY " + order;
  REQUIRE(sqlite3_prepare_v2(c.get(), sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  std::ostringstream out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    for (int i = 0; i < columns; ++i) {
      switch (sqlite3_column_type(stmt, i)) {
        case SQLITE_INTEGER:
          out << "i" << sqlite3_column_int64(stmt, i);
          break;
        case SQLITE_FLOAT: {
          char buf[40];
          std::snprintf(buf, sizeof buf, "f%.17g", sqlite3_column_double(stmt, i));
          out << buf;
          break;
        }
        case SQLITE_TEXT:
          out << "t'" << sqlite3_column_text(stmt, i) << "'";
          break;
        case SQLITE_BLOB: {
          auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(stmt, i));
          out << "x";
          for (int k = 0; k < sqlite3_column_bytes(stmt, i); ++k) {
            char buf[3];
            std::snprintf(buf, sizeof buf, "%02x", p[k]);
            out << buf;
          }
          break;
        }
        default:
          out << "null";
      }
      out << '|';
    }
    out << '\n';
  }
  sqlite3_finalize(stmt);
  REQUIRE(rc == SQLITE_DONE);
  return out.str();
}

// Every table's dump plus an FTS query's answer: what a user would read.
std::map<std::string, std::string> DumpAll(const std::string& path) {
  Conn c(path, SQLITE_OPEN_READONLY);
  std::map<std::string, std::string> dumps;
  for (const char* table : {"events", "readings", "totals"}) dumps[table] = DumpTable(c, table);
  dumps["notes match"] = c.Text("SELECT group_concat(body, ';') FROM notes WHERE notes MATCH 'f*'");
  dumps["schema"] = c.Text("SELECT group_concat(name || ':' || type, ',') FROM sqlite_schema");
  return dumps;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> Names(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  for (const auto& p : paths) names.push_back(fs::path(p).filename().string());
  return names;
}

// Keeps inserting, one small transaction at a time, on its own connection
// with no busy timeout: any lock the backup took that a WAL reader would not
// take shows up as an SQLITE_BUSY error here. Each transaction adds one event,
// one reading and one to totals.writer, so in every committed state
// readings of 'writer' == totals.writer.
class Writer {
 public:
  explicit Writer(std::string path) : path_(std::move(path)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Writer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t committed() const { return committed_; }
  void WaitFor(int64_t n) const {
    while (committed_ < n && errors_ == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  int errors() const { return errors_; }
  const std::string& first_error() const { return first_error_; }

 private:
  void Run() {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      first_error_ = "open failed";
      ++errors_;
      return;
    }
    sqlite3_exec(db, "PRAGMA synchronous = NORMAL", nullptr, nullptr, nullptr);
    for (int64_t n = 1; !stop_; ++n) {
      std::string sql =
          "BEGIN IMMEDIATE;"
          "INSERT INTO events (der_id, kw, payload) VALUES ('writer', " +
          std::to_string(n) +
          ", randomblob(100));"
          "INSERT INTO readings VALUES ('writer', " +
          std::to_string(n) +
          ", 1.5);"
          "UPDATE totals SET n = n + 1 WHERE name = 'writer';"
          "COMMIT;";
      char* err = nullptr;
      if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        if (errors_++ == 0) first_error_ = err ? err : "?";
        sqlite3_free(err);
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        break;
      }
      ++committed_;
    }
    sqlite3_close_v2(db);
  }

  std::string path_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> committed_{0};
  std::atomic<int> errors_{0};
  std::string first_error_;  // written before errors_ is incremented past 0
  std::thread thread_;
};

BackupOptions Options(const std::string& db, const std::string& dir) {
  BackupOptions o;
  o.db_path = db;
  o.dir = dir;
  return o;
}

}  // namespace

TEST_CASE("a backup verifies and answers every query as the source does", "[backup]") {
  TempDir tmp;
  MakeSource(tmp / "derms.db", 3000);
  auto report = RunBackup(Options(tmp / "derms.db", tmp / "second-region"), kNowMs);
  INFO(report.status().ToString());
  REQUIRE(report.ok());
  CHECK(fs::path(report->path).filename() == "derms-20260101T000000000Z.db");
  CHECK(fs::exists(report->path));
  CHECK(report->bytes == static_cast<int64_t>(fs::file_size(report->path)));
  CHECK(report->row_counts.at("events") == 3000);
  CHECK(report->row_counts.at("readings") == 3000);
  CHECK(report->row_counts.at("totals") == 1);
  CHECK(report->row_counts.at("notes_content") == 2);  // shadow tables are ordinary
  CHECK(report->row_counts.count("notes") == 0);       // the virtual table is not counted
  CHECK(report->removed.empty());
  CHECK_FALSE(report->command_exit.has_value());

  auto verified = VerifyBackup(report->path);
  REQUIRE(verified.ok());
  CHECK(verified->row_counts == report->row_counts);
  CHECK(DumpAll(report->path) == DumpAll(tmp / "derms.db"));
  // One self-contained file: rollback-journal mode, nothing beside it.
  CHECK(Conn(report->path, SQLITE_OPEN_READONLY).Text("PRAGMA journal_mode") == "delete");
  CHECK(std::vector<std::string>{report->path} == ListBackups(tmp / "second-region"));
  for (const auto& entry : fs::directory_iterator(tmp / "second-region")) {
    std::string name = entry.path().filename().string();
    CHECK((name == "derms-20260101T000000000Z.db" || name == ".derms-backup.lock"));
  }
}

TEST_CASE("a backup taken while a writer inserts is one moment's snapshot and never blocks it",
          "[backup]") {
  TempDir tmp;
  std::string db = tmp / "derms.db";
  MakeSource(db, 20000);
  Writer writer(db);
  writer.WaitFor(200);
  int64_t before = writer.committed();
  auto report = RunBackup(Options(db, tmp / "backups"), kNowMs);
  int64_t after = writer.committed();
  // The writer goes on after the backup: it was never left stuck behind it.
  writer.WaitFor(after + 200);
  writer.Stop();
  INFO("writer error: " << writer.first_error());
  REQUIRE(writer.errors() == 0);
  INFO(report.status().ToString());
  REQUIRE(report.ok());
  INFO("writer commits during the backup: " << after - before << ", snapshot held "
                                            << report->snapshot_ms << " ms");

  Conn backup(report->path, SQLITE_OPEN_READONLY);
  int64_t in_backup = backup.Int("SELECT n FROM totals WHERE name = 'writer'");
  // Every table is at the same moment: the writer's three writes go together.
  CHECK(backup.Int("SELECT count(*) FROM readings WHERE der_id = 'writer'") == in_backup);
  CHECK(backup.Int("SELECT count(*) FROM events WHERE der_id = 'writer'") == in_backup);
  CHECK(report->row_counts.at("events") == 20000 + in_backup);
  CHECK(report->row_counts.at("readings") == 20000 + in_backup);
  CHECK(in_backup >= before);
  CHECK(in_backup <= after + 1);  // a commit may land before its count is bumped
  CHECK(Conn(db, SQLITE_OPEN_READONLY).Int("SELECT n FROM totals") == writer.committed());
  CHECK(writer.committed() > in_backup);
  REQUIRE(VerifyBackup(report->path).ok());
}

TEST_CASE("rotation keeps exactly the newest backups and removes stale partial files", "[backup]") {
  TempDir tmp;
  MakeSource(tmp / "derms.db", 100);
  std::string dir = tmp / "backups";
  fs::create_directories(dir);
  std::ofstream(dir + "/derms-20250101T000000000Z.db.partial") << "half a backup";
  std::ofstream(dir + "/derms-20250101T000000000Z.db.partial-journal") << "x";
  std::ofstream(dir + "/notes.txt") << "not a backup";
  std::ofstream(dir + "/derms-latest.db") << "not named like a backup";

  auto options = Options(tmp / "derms.db", dir);
  options.keep = 3;
  std::vector<std::string> made, removed;
  for (int i = 0; i < 5; ++i) {
    auto r = RunBackup(options, kNowMs + i * 60000);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK(r->rotate_error.empty());
    made.push_back(r->path);
    removed.insert(removed.end(), r->removed.begin(), r->removed.end());
  }
  // A second backup in the same millisecond gets a name of its own, newest.
  auto same_ms = RunBackup(options, kNowMs + 4 * 60000);
  REQUIRE(same_ms.ok());
  CHECK(fs::path(same_ms->path).filename() == "derms-20260101T000400000Z-1.db");
  removed.insert(removed.end(), same_ms->removed.begin(), same_ms->removed.end());

  CHECK(Names(ListBackups(dir)) == std::vector<std::string>{"derms-20260101T000400000Z-1.db",
                                                            "derms-20260101T000400000Z.db",
                                                            "derms-20260101T000300000Z.db"});
  std::sort(removed.begin(), removed.end());
  CHECK(Names(removed) == std::vector<std::string>{"derms-20250101T000000000Z.db.partial",
                                                   "derms-20250101T000000000Z.db.partial-journal",
                                                   "derms-20260101T000000000Z.db",
                                                   "derms-20260101T000100000Z.db",
                                                   "derms-20260101T000200000Z.db"});
  CHECK(fs::exists(dir + "/notes.txt"));
  CHECK(fs::exists(dir + "/derms-latest.db"));

  options.keep = 0;
  auto refused = RunBackup(options, kNowMs);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message() == "backup: keep 0 must be at least 1 (the backup just made)");
}

TEST_CASE("the command gets the backup's path and its failure is reported with the backup kept",
          "[backup]") {
  TempDir tmp;
  MakeSource(tmp / "derms.db", 100);
  std::string other = tmp / "other region";
  fs::create_directories(other);
  auto options = Options(tmp / "derms.db", tmp / "backups");

  SECTION("a command that copies the backup elsewhere") {
    options.command = "cp \"$DERMS_BACKUP_FILE\" '" + other +
                      "/' && printf %s \"$DERMS_BACKUP_FILE\" > '" + other + "/name.txt'";
    auto r = RunBackup(options, kNowMs);
    REQUIRE(r.ok());
    CHECK(r->command_exit == 0);
    CHECK(r->command_error.empty());
    std::string copy = other + "/" + fs::path(r->path).filename().string();
    CHECK(ReadFile(copy) == ReadFile(r->path));
    CHECK(ReadFile(other + "/name.txt") == fs::absolute(r->path).lexically_normal().string());
    CHECK(VerifyBackup(copy).ok());
  }
  SECTION("a command that exits non-zero") {
    options.command = "echo 'upload refused' >&2; exit 3";
    auto r = RunBackup(options, kNowMs);
    REQUIRE(r.ok());
    CHECK(r->command_exit == 3);
    CHECK(r->command_error == "command exited with status 3");
    CHECK(VerifyBackup(r->path).ok());
  }
  SECTION("a command killed by a signal") {
    options.command = "kill -TERM $$";
    auto r = RunBackup(options, kNowMs);
    REQUIRE(r.ok());
    CHECK(r->command_exit == 128 + 15);
    CHECK_THAT(r->command_error, Catch::Contains("killed by signal 15"));
    CHECK(fs::exists(r->path));
  }
  SECTION("a command that outlives its timeout is stopped") {
    options.command = "sleep 30; touch '" + other + "/not-reached'";
    options.command_timeout_s = 1;
    auto r = RunBackup(options, kNowMs);
    REQUIRE(r.ok());
    CHECK_THAT(r->command_error, Catch::StartsWith("command timed out after 1 s"));
    CHECK(r->command_exit == 128 + 15);
    CHECK_FALSE(fs::exists(other + "/not-reached"));
    CHECK(VerifyBackup(r->path).ok());
  }
}

TEST_CASE("a damaged backup fails verification and restore refuses it leaving the target alone",
          "[backup]") {
  TempDir tmp;
  MakeSource(tmp / "derms.db", 5000);
  auto r = RunBackup(Options(tmp / "derms.db", tmp / "backups"), kNowMs);
  REQUIRE(r.ok());
  std::string damaged = tmp / "damaged.db";
  fs::copy_file(r->path, damaged);

  SECTION("truncated") { fs::resize_file(damaged, fs::file_size(damaged) / 2); }
  SECTION("a page in the middle overwritten") {
    auto pages = static_cast<int64_t>(fs::file_size(damaged) / 4096);
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((pages / 2) * 4096);
    f << std::string(4096, '\xA5');
  }
  SECTION("emptied") { fs::resize_file(damaged, 0); }

  auto verify = VerifyBackup(damaged);
  REQUIRE_FALSE(verify.ok());
  INFO(verify.status().message());
  CHECK_THAT(verify.status().message(),
             Catch::StartsWith("backup '" + damaged + "' failed verification: "));

  MakeSource(tmp / "target.db", 10);
  auto before = DumpAll(tmp / "target.db");
  auto restore = Restore(RestoreOptions{damaged, tmp / "target.db", true});
  REQUIRE_FALSE(restore.ok());
  CHECK(restore.status().code() == "restore_refused");
  CHECK_THAT(restore.status().message(), Catch::Contains(verify.status().message()));
  CHECK_THAT(restore.status().message(), Catch::EndsWith("was left untouched"));
  CHECK(DumpAll(tmp / "target.db") == before);
  for (const auto& entry : fs::directory_iterator(tmp.str())) {
    CHECK(entry.path().filename().string().find("before-restore") == std::string::npos);
  }
}

TEST_CASE("restoring over the source gives exactly the backup's answers and keeps the old db",
          "[backup]") {
  TempDir tmp;
  std::string db = tmp / "derms.db";
  MakeSource(db, 4000);
  {
    Writer writer(db);
    writer.WaitFor(100);
    writer.Stop();
    REQUIRE(writer.errors() == 0);
  }
  auto backup = RunBackup(Options(db, tmp / "backups"), kNowMs);
  REQUIRE(backup.ok());
  auto backup_answers = DumpAll(backup->path);

  // Later changes, left in the WAL as a crashed aggregator would leave them.
  {
    Conn c(db);
    c.Exec("PRAGMA wal_autocheckpoint = 0");
    REQUIRE(sqlite3_db_config(c.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr) == SQLITE_OK);
    c.Exec("INSERT INTO events (der_id, kw, payload) VALUES ('late', 1, x'00ff')");
    c.Exec("DELETE FROM readings WHERE seq % 7 = 0");
    c.Exec("UPDATE totals SET n = -1");
  }
  REQUIRE(fs::file_size(db + "-wal") > 0);
  auto later_answers = DumpAll(db);
  REQUIRE(later_answers != backup_answers);

  auto restored = Restore(RestoreOptions{backup->path, db, true});
  INFO(restored.status().ToString());
  REQUIRE(restored.ok());
  CHECK(DumpAll(db) == backup_answers);
  CHECK(restored->row_counts == backup->row_counts);
  CHECK(Conn(db).Text("PRAGMA journal_mode") == "wal");
  CHECK(Conn(db).Text("PRAGMA integrity_check") == "ok");
  REQUIRE_FALSE(restored->previous_path.empty());
  CHECK_THAT(restored->previous_path, Catch::StartsWith(db + ".before-restore-"));
  CHECK(DumpAll(restored->previous_path) == later_answers);
  // The backup itself is left as it was.
  CHECK(VerifyBackup(backup->path).ok());

  SECTION("without keeping the previous database") {
    auto again = Restore(RestoreOptions{backup->path, db, false});
    REQUIRE(again.ok());
    CHECK(again->previous_path.empty());
    CHECK(DumpAll(db) == backup_answers);
  }
}

TEST_CASE("restore is refused while the database lock is held", "[backup]") {
  TempDir tmp;
  std::string db = tmp / "derms.db";
  MakeSource(db, 50);
  auto backup = RunBackup(Options(db, tmp / "backups"), kNowMs);
  REQUIRE(backup.ok());
  Conn(db).Exec("DELETE FROM events");
  auto changed = DumpAll(db);
  {
    auto lock = DbLock::Acquire(db);
    REQUIRE(lock.ok());
    CHECK(lock->lock_path() == db + ".lock");
    DbLock moved = std::move(lock).value();  // still held after a move
    auto second = DbLock::Acquire(db);
    REQUIRE_FALSE(second.ok());
    CHECK(second.status().message() ==
          "database '" + db + "' is in use (lock '" + db +
              ".lock' is held by a running aggregator); stop it first");
    auto refused = Restore(RestoreOptions{backup->path, db, true});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == "in_use");
    CHECK(DumpAll(db) == changed);
  }
  auto restored = Restore(RestoreOptions{backup->path, db, true});
  INFO(restored.status().ToString());
  REQUIRE(restored.ok());
  CHECK(DumpAll(db) == DumpAll(backup->path));
  CHECK(DbLock::Acquire(db).ok());  // restore released it
}

TEST_CASE("restoring into a fresh path creates a WAL database with the backup's answers",
          "[backup]") {
  TempDir tmp;
  MakeSource(tmp / "derms.db", 500, 8192);
  auto backup = RunBackup(Options(tmp / "derms.db", tmp / "backups"), kNowMs);
  REQUIRE(backup.ok());

  std::string fresh = tmp / "new/var/derms.db";
  auto restored = Restore(RestoreOptions{backup->path, fresh, true});
  INFO(restored.status().ToString());
  REQUIRE(restored.ok());
  CHECK(restored->previous_path.empty());
  CHECK(DumpAll(fresh) == DumpAll(backup->path));
  CHECK(Conn(fresh).Text("PRAGMA journal_mode") == "wal");

  SECTION("over a WAL database of another page size") {
    std::string other = tmp / "other.db";
    MakeSource(other, 20, 4096);
    auto over = Restore(RestoreOptions{backup->path, other, false});
    INFO(over.status().ToString());
    REQUIRE(over.ok());
    CHECK(DumpAll(other) == DumpAll(backup->path));
    CHECK(Conn(other).Text("PRAGMA page_size") == "8192");
    CHECK(Conn(other).Text("PRAGMA journal_mode") == "wal");
  }
}

TEST_CASE("backup and verify name what is missing or wrong", "[backup]") {
  TempDir tmp;
  auto missing_db = RunBackup(Options(tmp / "nope.db", tmp / "backups"), kNowMs);
  REQUIRE_FALSE(missing_db.ok());
  CHECK(missing_db.status().message() ==
        "backup: database '" + (tmp / "nope.db") + "' does not exist or is not a file");
  auto missing_backup = VerifyBackup(tmp / "nope.db");
  REQUIRE_FALSE(missing_backup.ok());
  CHECK(missing_backup.status().message() == "backup '" + (tmp / "nope.db") + "' does not exist");
  std::ofstream(tmp / "text.db") << std::string(5000, 'x');
  auto not_db = VerifyBackup(tmp / "text.db");
  REQUIRE_FALSE(not_db.ok());
  CHECK_THAT(not_db.status().message(), Catch::Contains("file is not a database"));
  CHECK(ListBackups(tmp / "no-such-dir").empty());
}
