// The Store's error state against real SQLite files: a record SQLite refuses
// for its content, and a disk that fills up (a small tmpfs, when the test may
// mount one) under the writer, then frees or stays full while it closes.
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "cloud_aggregator/storage/store.h"
#include "tests/support/tmpfs.h"

namespace fs = std::filesystem;
using derms::storage::Store;
using derms::storage::StoreOptions;

namespace {

struct TempDir {
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() /
           ("derms-faults-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path path;
};

// Polls `done` for up to `timeout`: waiting for an outcome, not timing it.
bool WaitFor(const std::function<bool()>& done,
             std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

int64_t Count(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  int64_t n = -1;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      n = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return n;
}

void Exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

derms::storage::TelemetryRecord Sample(const std::string& der_id, uint64_t seq) {
  derms::v1::Telemetry t;
  t.set_der_id(der_id);
  t.set_seq(seq);
  t.set_timestamp_ms(1767225600000 + static_cast<int64_t>(seq) * 1000);
  t.set_active_power_kw(static_cast<double>(seq % 10));
  return {t, t.timestamp_ms()};
}

derms::storage::EventRecord Event(const std::string& name) {
  return {"test", name, 1767225600000, "{}"};
}

StoreOptions FastRetries(const std::string& path) {
  StoreOptions o;
  o.path = path;
  o.retry_initial = std::chrono::milliseconds(20);
  o.retry_max = std::chrono::milliseconds(200);
  o.close_timeout = std::chrono::milliseconds(500);
  o.pause_records = 1000;
  return o;
}

}  // namespace

TEST_CASE("a record SQLite refuses for its content is counted and the rest of its batch commits",
          "[store]") {
  TempDir dir;
  const std::string path = (dir.path / "derms.db").string();
  auto store = Store::Open(FastRetries(path));
  REQUIRE(store.ok());
  // A constraint no retry can satisfy, from another connection.
  Exec(path,
       "CREATE TRIGGER refuse_bad BEFORE INSERT ON events WHEN NEW.name = 'bad' "
       "BEGIN SELECT RAISE(ABORT, 'bad event refused'); END");
  std::atomic<bool> released{false};
  (*store)->Add(Event("good-1"));
  (*store)->Add(Event("bad"));
  (*store)->Add(Event("good-2"));
  (*store)->AfterCommit([&] { released = true; });
  REQUIRE((*store)->Flush().ok());
  CHECK(released);
  CHECK((*store)->counters().errors == 1);
  CHECK(Count(path, "SELECT COUNT(*) FROM events") == 2);
  auto health = (*store)->health();
  CHECK_FALSE(health.failing);
  CHECK(health.held == 0);
  CHECK(health.accepted == 3);
  CHECK(health.committed == 3);
}

TEST_CASE(
    "a full disk holds the batch and what follows it until there is room, then commits "
    "each record once",
    "[store]") {
  TempDir dir;
  derms::testing::TmpfsMount disk((dir.path / "disk").string(), 4 << 20);
  if (!disk.mounted()) {
    WARN("skipped: no tmpfs to fill (" << disk.why() << ")");
    return;
  }
  const std::string path = disk.dir() + "/derms.db";
  auto opened = Store::Open(FastRetries(path));
  REQUIRE(opened.ok());
  Store& store = **opened;
  for (uint64_t seq = 1; seq <= 100; ++seq) store.Add(Sample("a", seq));
  REQUIRE(store.Flush().ok());

  REQUIRE(disk.Fill() > 0);
  std::atomic<bool> released{false};
  for (uint64_t seq = 101; seq <= 3100; ++seq) store.Add(Sample("a", seq));
  // Rowid-keyed rows: a retry that wrote them twice would show.
  for (int i = 0; i < 200; ++i) store.Add(Event("e-" + std::to_string(i)));
  store.AfterCommit([&] { released = true; });
  derms::Status flushed = store.Flush();
  INFO(flushed.ToString());
  REQUIRE_FALSE(flushed.ok());
  CHECK_THAT(flushed.message(), Catch::Contains("SQLITE_FULL"));

  auto failing = store.health();
  CHECK(failing.failing);
  CHECK(failing.failing_since_ms > 0);
  CHECK_THAT(failing.last_error, Catch::Contains("SQLITE_FULL"));
  CHECK(failing.held == 3200);
  CHECK(store.ShouldPause());
  // It keeps retrying, and releases nothing, while the disk stays full.
  REQUIRE(WaitFor([&] { return store.health().retries >= 3; }));
  CHECK_FALSE(released);
  CHECK_FALSE(store.Flush().ok());

  disk.RemoveFiller();
  REQUIRE(WaitFor([&] { return !store.health().failing; }));
  REQUIRE(store.Flush().ok());
  CHECK(released);
  CHECK_FALSE(store.ShouldPause());
  auto recovered = store.health();
  CHECK(recovered.held == 0);
  CHECK(recovered.accepted == 3300);
  CHECK(recovered.committed == 3300);
  CHECK_THAT(recovered.last_error, Catch::Contains("SQLITE_FULL"));  // kept for the record
  CHECK(Count(path, "SELECT COUNT(*) FROM telemetry") == 3100);
  CHECK(Count(path, "SELECT COUNT(*) FROM events") == 200);
  CHECK(Count(path, "SELECT COUNT(DISTINCT name) FROM events") == 200);
  CHECK(store.counters().duplicates == 0);
}

TEST_CASE(
    "a store closed while its disk stays full gives up after close_timeout and releases "
    "nothing",
    "[store]") {
  TempDir dir;
  derms::testing::TmpfsMount disk((dir.path / "disk").string(), 4 << 20);
  if (!disk.mounted()) {
    WARN("skipped: no tmpfs to fill (" << disk.why() << ")");
    return;
  }
  const std::string path = disk.dir() + "/derms.db";
  std::atomic<bool> released{false};
  {
    auto opened = Store::Open(FastRetries(path));
    REQUIRE(opened.ok());
    Store& store = **opened;
    for (uint64_t seq = 1; seq <= 100; ++seq) store.Add(Sample("a", seq));
    REQUIRE(store.Flush().ok());
    REQUIRE(disk.Fill() > 0);
    for (uint64_t seq = 101; seq <= 3100; ++seq) store.Add(Sample("a", seq));
    store.AfterCommit([&] { released = true; });
    REQUIRE(WaitFor([&] { return store.health().failing; }));
  }  // closes: retries for close_timeout, then gives up (logged)
  CHECK_FALSE(released);
  disk.RemoveFiller();
  CHECK(Count(path, "SELECT COUNT(*) FROM telemetry") == 100);
  // The database is sound and opens again.
  auto again = Store::Open(FastRetries(path));
  REQUIRE(again.ok());
  (*again)->Add(Sample("a", 101));
  REQUIRE((*again)->Flush().ok());
  CHECK(Count(path, "SELECT COUNT(*) FROM telemetry") == 101);
}

TEST_CASE("a module's own table is created and written through generic rows; a bad row is "
          "refused alone",
          "[storage]") {
  using derms::storage::RowValue;
  using derms::storage::TableRowRecord;
  using derms::storage::TableSchemaRecord;
  TempDir dir;
  const std::string path = (dir.path / "derms.db").string();
  {
    auto store = Store::Open(FastRetries(path));
    REQUIRE(store.ok());
    (*store)->Add(TableSchemaRecord{
        "CREATE TABLE IF NOT EXISTS incidents (id INTEGER PRIMARY KEY, der_id TEXT NOT NULL, "
        "opened_ms INTEGER, severity REAL, note TEXT)"});
    (*store)->Add(TableRowRecord{"incidents",
                                 {"id", "der_id", "opened_ms", "severity", "note"},
                                 {RowValue{int64_t{1}}, RowValue{std::string("bat-1")},
                                  RowValue{int64_t{1700000000000}}, RowValue{0.5}, RowValue{}}});
    // Same key again, replacing: an upsert.
    (*store)->Add(TableRowRecord{"incidents",
                                 {"id", "der_id", "severity"},
                                 {RowValue{int64_t{1}}, RowValue{std::string("bat-1")},
                                  RowValue{0.9}},
                                 true});
    // Refused alone: an unknown table, a name that is not an identifier, a
    // NOT NULL column left NULL.
    (*store)->Add(TableRowRecord{"nowhere", {"id"}, {RowValue{int64_t{2}}}});
    (*store)->Add(TableRowRecord{"incidents; DROP TABLE ders", {"id"}, {RowValue{int64_t{3}}}});
    (*store)->Add(TableRowRecord{"incidents", {"id", "der_id"}, {RowValue{int64_t{4}}, RowValue{}}});
    (*store)->Add(TableRowRecord{"incidents",
                                 {"id", "der_id"},
                                 {RowValue{int64_t{5}}, RowValue{std::string("pv-2")}}});
    REQUIRE((*store)->Flush().ok());
    CHECK((*store)->counters().errors == 3);
  }
  CHECK(Count(path, "SELECT COUNT(*) FROM incidents") == 2);
  CHECK(Count(path, "SELECT CAST(severity * 10 AS INTEGER) FROM incidents WHERE id = 1") == 9);
  CHECK(Count(path, "SELECT COUNT(*) FROM ders") == 0);  // the table is still there
}
