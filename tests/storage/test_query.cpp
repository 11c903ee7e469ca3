// Read-only queries against real SQLite files in WAL mode, with another
// connection open for writing as the aggregator keeps one.
#include <fmt/format.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cloud_aggregator/storage/query.h"

namespace {

namespace fs = std::filesystem;
using derms::Status;
using derms::storage::Blob;
using derms::storage::FormatCsv;
using derms::storage::FormatJson;
using derms::storage::FormatTable;
using derms::storage::QueryOptions;
using derms::storage::QueryResult;
using derms::storage::RunReadOnlyQuery;
using derms::storage::Value;

// A directory of its own under the system's temporary directory, removed
// however the test ends.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            fmt::format("derms-query-test-{}-{}", ::getpid(), counter.fetch_add(1));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// A history database in WAL mode and the writer connection the aggregator
// would hold open on it.
class HistoryDb {
 public:
  HistoryDb() : path_(dir_.path() / "derms.db") {
    REQUIRE(sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            nullptr) == SQLITE_OK);
    Exec("PRAGMA journal_mode = WAL");
    Exec(R"sql(
      CREATE TABLE ders (der_id TEXT PRIMARY KEY, der_type TEXT NOT NULL, max_kw REAL);
      CREATE TABLE telemetry (
        der_id TEXT NOT NULL, seq INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
        active_power_kw REAL NOT NULL, soc_pct REAL, alarms TEXT, payload BLOB,
        PRIMARY KEY (der_id, seq)) WITHOUT ROWID;
      CREATE INDEX telemetry_by_time ON telemetry (timestamp_ms);
      CREATE VIEW latest AS SELECT der_id, max(seq) AS seq FROM telemetry GROUP BY der_id;
      CREATE TRIGGER ders_added AFTER INSERT ON ders BEGIN SELECT 1; END;
      INSERT INTO ders VALUES ('bat-1', 'battery', 5.0), ('pv-2', 'solar', 3.5);
      INSERT INTO telemetry VALUES
        ('bat-1', 1, 1000, 2.5, 80.0, NULL, x'00ff10'),
        ('bat-1', 2, 2000, -1.25, 79.5, 'over "temp", fan', x''),
        ('pv-2', 1, 1000, 3, NULL, 'ünïcødé ✓', NULL);
      PRAGMA user_version = 3;
    )sql");
  }
  ~HistoryDb() { sqlite3_close_v2(db_); }

  void Exec(const std::string& sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    std::string message = error ? error : "";
    sqlite3_free(error);
    INFO(sql);
    INFO(message);
    REQUIRE(rc == SQLITE_OK);
  }

  // Every schema entry and row (through the writer's connection, which reads
  // without writing) and the bytes of the database and WAL files.
  std::string Dump() {
    std::string out;
    auto each_row = [&](const std::string& sql) {
      sqlite3_stmt* stmt = nullptr;
      REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
      std::vector<std::string> rows;
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        std::string row;
        for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
          row += fmt::format("{}:{}|", sqlite3_column_type(stmt, i), text ? text : "");
        }
        rows.push_back(row);
      }
      sqlite3_finalize(stmt);
      return rows;
    };
    for (const auto& row : each_row("SELECT type, name, tbl_name, sql FROM sqlite_schema "
                                    "ORDER BY name")) {
      out += row + "\n";
    }
    for (const auto& row : each_row("SELECT name FROM sqlite_schema WHERE type = 'table' "
                                    "ORDER BY name")) {
      std::string table = row.substr(2, row.size() - 3);
      for (const auto& r : each_row(fmt::format("SELECT * FROM \"{}\"", table))) {
        out += table + ": " + r + "\n";
      }
    }
    for (const auto& row : each_row("PRAGMA user_version")) out += "user_version " + row + "\n";
    for (const auto& row : each_row("PRAGMA journal_mode")) out += "journal_mode " + row + "\n";
    out += "db bytes: " + ReadFile(path_) + "\n";
    out += "wal bytes: " + ReadFile(path_.string() + "-wal") + "\n";
    return out;
  }

  sqlite3* db() { return db_; }
  const fs::path& path() const { return path_; }
  const fs::path& dir() const { return dir_.path(); }
  QueryOptions Options() const {
    QueryOptions options;
    options.db_path = path_.string();
    return options;
  }

 private:
  TempDir dir_;
  fs::path path_;
  sqlite3* db_ = nullptr;
};

// The query's error message; fails the test if the query succeeded.
std::string ErrorOf(const QueryOptions& options, const std::string& sql) {
  auto result = RunReadOnlyQuery(options, sql);
  INFO(sql);
  REQUIRE_FALSE(result.ok());
  return result.status().message();
}

QueryResult RowsOf(const QueryOptions& options, const std::string& sql) {
  auto result = RunReadOnlyQuery(options, sql);
  INFO(sql);
  INFO(result.status().ToString());
  REQUIRE(result.ok());
  return result.value();
}

// SQLite's own JSON parser (strict RFC 8259 in 3.40) as an independent judge.
bool IsValidJson(const std::string& text) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(":memory:", &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT json_valid(?)", -1, &stmt, nullptr) == SQLITE_OK);
  sqlite3_bind_text(stmt, 1, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  bool valid = sqlite3_column_int(stmt, 0) == 1;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return valid;
}

}  // namespace

TEST_CASE("a query returns column names and values with their SQLite types", "[query]") {
  HistoryDb history;
  QueryResult r = RowsOf(history.Options(),
                         "SELECT der_id, seq, active_power_kw, soc_pct, alarms, payload "
                         "FROM telemetry ORDER BY der_id, seq");
  CHECK(r.columns == std::vector<std::string>{"der_id", "seq", "active_power_kw", "soc_pct",
                                              "alarms", "payload"});
  REQUIRE(r.rows.size() == 3);
  CHECK_FALSE(r.truncated);
  CHECK(r.rows[0][0] == Value(std::string("bat-1")));
  CHECK(r.rows[0][1] == Value(int64_t{1}));
  CHECK(r.rows[0][2] == Value(2.5));
  CHECK(r.rows[0][4] == Value(std::monostate{}));
  CHECK(r.rows[0][5] == Value(Blob{std::string("\x00\xff\x10", 3)}));
  CHECK(r.rows[1][2] == Value(-1.25));
  CHECK(r.rows[1][4] == Value(std::string("over \"temp\", fan")));
  CHECK(r.rows[1][5] == Value(Blob{""}));
  CHECK(r.rows[2][2] == Value(3.0));  // REAL column affinity
  CHECK(r.rows[2][3] == Value(std::monostate{}));
  CHECK(r.rows[2][4] == Value(std::string("ünïcødé ✓")));

  SECTION("views, functions, recursive CTEs and eponymous virtual tables read too") {
    CHECK(RowsOf(history.Options(), "SELECT der_id, seq FROM latest ORDER BY der_id").rows ==
          std::vector<std::vector<Value>>{{std::string("bat-1"), int64_t{2}},
                                          {std::string("pv-2"), int64_t{1}}});
    CHECK(RowsOf(history.Options(),
                 "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 4) "
                 "SELECT sum(x), upper('kw'), round(2.345, 1) FROM n")
              .rows == std::vector<std::vector<Value>>{{int64_t{10}, std::string("KW"), 2.3}});
    CHECK(RowsOf(history.Options(), "SELECT value FROM json_each('[7, \"x\"]')").rows ==
          std::vector<std::vector<Value>>{{int64_t{7}}, {std::string("x")}});
    CHECK(
        RowsOf(history.Options(), "SELECT name FROM pragma_table_info('ders') ORDER BY cid").rows ==
        std::vector<std::vector<Value>>{
            {std::string("der_id")}, {std::string("der_type")}, {std::string("max_kw")}});
    CHECK(RowsOf(history.Options(),
                 "EXPLAIN QUERY PLAN SELECT * FROM telemetry "
                 "WHERE timestamp_ms > 5")
              .rows.size() >= 1);
  }
  SECTION("leading empty statements and comments are skipped") {
    CHECK(RowsOf(history.Options(), " ; -- hello\n/* c */ SELECT 1 AS one; -- bye").rows ==
          std::vector<std::vector<Value>>{{int64_t{1}}});
  }
}

TEST_CASE("a closed WAL database is read without creating or changing its data", "[query]") {
  TempDir dir;
  fs::path path = dir.path() / "closed.db";
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db,
                         "PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER); "
                         "INSERT INTO t VALUES (1), (2);",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  std::string before = ReadFile(path);
  QueryOptions options;
  options.db_path = path.string();
  CHECK(RowsOf(options, "SELECT count(*) FROM t").rows ==
        std::vector<std::vector<Value>>{{int64_t{2}}});
  CHECK(RowsOf(options, "PRAGMA journal_mode").rows ==
        std::vector<std::vector<Value>>{{std::string("wal")}});
  CHECK(ReadFile(path) == before);
}

TEST_CASE("results print as an aligned table, CSV and JSON", "[query]") {
  HistoryDb history;
  QueryResult r = RowsOf(history.Options(), R"sql(
    SELECT column1 AS id, column2 AS name, column3 AS kw, column4 AS note FROM (VALUES
      (1, 'bat-1', 2.5, NULL),
      (22, 'say "hi", ok', -1.0, 'ünï ✓'),
      (3, 'two' || char(10) || 'lines', 1e20, x'00ff'))
  )sql");

  CHECK(FormatTable(r) ==
        "id | name         |    kw | note\n"
        "---+--------------+-------+--------\n"
        " 1 | bat-1        |   2.5 | NULL\n"
        "22 | say \"hi\", ok |  -1.0 | ünï ✓\n"
        " 3 | two\\nlines   | 1e+20 | x'00ff'\n"
        "(3 rows)\n");

  CHECK(FormatCsv(r) ==
        "id,name,kw,note\n"
        "1,bat-1,2.5,\n"
        "22,\"say \"\"hi\"\", ok\",-1.0,ünï ✓\n"
        "3,\"two\nlines\",1e+20,x'00ff'\n");

  std::string json = FormatJson(r);
  CHECK(json ==
        "[\n"
        "  {\"id\":1,\"name\":\"bat-1\",\"kw\":2.5,\"note\":null},\n"
        "  {\"id\":22,\"name\":\"say \\\"hi\\\", ok\",\"kw\":-1.0,\"note\":\"ünï ✓\"},\n"
        "  {\"id\":3,\"name\":\"two\\nlines\",\"kw\":1e+20,\"note\":\"AP8=\"}\n"
        "]\n");
  CHECK(IsValidJson(json));

  SECTION("one row, no rows, empty text and truncation") {
    QueryResult one = RowsOf(history.Options(), "SELECT '' AS empty, NULL AS missing");
    CHECK(FormatTable(one) ==
          "empty | missing\n"
          "------+--------\n"
          "      | NULL\n"
          "(1 row)\n");
    CHECK(FormatCsv(one) == "empty,missing\n\"\",\n");
    QueryResult none = RowsOf(history.Options(), "SELECT der_id FROM ders WHERE 0");
    CHECK(FormatTable(none) == "der_id\n------\n(0 rows)\n");
    CHECK(FormatCsv(none) == "der_id\n");
    CHECK(FormatJson(none) == "[]\n");
    none.truncated = true;
    CHECK(FormatTable(none) == "der_id\n------\n(0 rows, truncated)\n");
  }
  SECTION("JSON stays valid for control characters, bad UTF-8, infinities, NaN and twin names") {
    QueryResult odd = RowsOf(history.Options(),
                             "SELECT char(1) || char(9) || '\\' || char(127) AS a, "
                             "CAST(x'66ff6f' AS TEXT) AS b, 1e999 AS a, -1e999 AS c, "
                             "9223372036854775807 AS big, 0.1 AS tenth, x'fbff' AS bytes");
    odd.rows[0].push_back(std::numeric_limits<double>::quiet_NaN());
    odd.columns.push_back("nan");
    std::string text = FormatJson(odd);
    CHECK(text ==
          "[\n"
          "  {\"a\":\"\\u0001\\t\\\\\x7f\",\"b\":\"f\\ufffdo\",\"a#2\":null,\"c\":null,"
          "\"big\":9223372036854775807,\"tenth\":0.1,\"bytes\":\"+/8=\",\"nan\":null}\n"
          "]\n");
    CHECK(IsValidJson(text));
    CHECK(FormatTable(odd) ==
          "a           | b   |   a |    c |                 big | tenth | bytes   | nan\n"
          "------------+-----+-----+------+---------------------+-------+---------+----\n"
          "\\x01\\t\\\\x7f | f\xffo | Inf | -Inf | 9223372036854775807 |   0.1 | x'fbff' | NaN\n"
          "(1 row)\n");
  }
}

TEST_CASE("every kind of write is refused and leaves the database unchanged", "[query]") {
  HistoryDb history;
  const std::string before = history.Dump();
  struct Case {
    std::string sql;
    std::string refusal;
  };
  const std::vector<Case> cases = {
      {"INSERT INTO telemetry (der_id, seq, timestamp_ms, active_power_kw) "
       "VALUES ('x', 1, 1, 1)",
       "query refused: writes are not allowed (INSERT on table 'telemetry')"},
      {"REPLACE INTO ders VALUES ('bat-1', 'battery', 9)",
       "query refused: writes are not allowed (INSERT on table 'ders')"},
      {"WITH n AS (SELECT 1) INSERT INTO ders SELECT 'x', 'y', 1 FROM n",
       "query refused: writes are not allowed (INSERT on table 'ders')"},
      {"UPDATE ders SET max_kw = 0",
       "query refused: writes are not allowed (UPDATE on table "
       "'ders')"},
      {"DELETE FROM telemetry",
       "query refused: writes are not allowed (DELETE on table "
       "'telemetry')"},
      {"INSERT INTO ders VALUES ('x', 'y', 1) RETURNING *",
       "query refused: writes are not allowed (INSERT on table 'ders')"},
      {"CREATE TABLE t (x)", "query refused: schema changes are not allowed (CREATE TABLE 't')"},
      {"CREATE TEMP TABLE t AS SELECT * FROM ders",
       "query refused: schema changes are not allowed (CREATE TABLE 't')"},
      {"CREATE INDEX ders_by_type ON ders (der_type)",
       "query refused: schema changes are not allowed (CREATE INDEX 'ders_by_type' on table "
       "'ders')"},
      {"CREATE VIEW v AS SELECT 1",
       "query refused: schema changes are not allowed (CREATE VIEW "
       "'v')"},
      {"CREATE TRIGGER t AFTER DELETE ON ders BEGIN SELECT 1; END",
       "query refused: schema changes are not allowed (CREATE TRIGGER 't' on table 'ders')"},
      {"CREATE VIRTUAL TABLE v USING rtree(id, x0, x1)",
       "query refused: schema changes are not allowed (CREATE VIRTUAL TABLE 'v' USING rtree)"},
      {"DROP TABLE ders", "query refused: schema changes are not allowed (DROP TABLE 'ders')"},
      {"DROP INDEX telemetry_by_time",
       "query refused: schema changes are not allowed (DROP INDEX 'telemetry_by_time')"},
      {"DROP VIEW latest", "query refused: schema changes are not allowed (DROP VIEW 'latest')"},
      {"DROP TRIGGER ders_added",
       "query refused: schema changes are not allowed (DROP TRIGGER 'ders_added')"},
      {"ALTER TABLE ders RENAME TO old_ders",
       "query refused: schema changes are not allowed (ALTER TABLE 'ders')"},
      {"ALTER TABLE ders ADD COLUMN extra TEXT",
       "query refused: schema changes are not allowed (ALTER TABLE 'ders')"},
      {"REINDEX telemetry_by_time",
       "query refused: writes are not allowed (REINDEX 'telemetry_by_time')"},
      {"ANALYZE", "query refused: writes are not allowed (ANALYZE writes the statistics tables)"},
      {"VACUUM", "query refused: writes are not allowed (VACUUM)"},
      {"vacuum main", "query refused: writes are not allowed (VACUUM)"},
      {"BEGIN IMMEDIATE",
       "query refused: transaction control is not needed (BEGIN): each query runs in a read "
       "transaction of its own"},
      {"COMMIT",
       "query refused: transaction control is not needed (COMMIT): each query runs in a read "
       "transaction of its own"},
      {"SAVEPOINT s",
       "query refused: transaction control is not needed (SAVEPOINT BEGIN 's'): each query "
       "runs in a read transaction of its own"},
      {"PRAGMA user_version = 9",
       "query refused: PRAGMA user_version = 9 would change a setting; pragmas may only be read"},
      {"SELECT load_extension('/tmp/nothing.so')",
       "query refused: load_extension() is not allowed"},
  };
  for (const auto& c : cases) {
    INFO(c.sql);
    CHECK(ErrorOf(history.Options(), c.sql) == c.refusal);
  }
  SECTION("the schema table itself cannot be written") {
    CHECK(ErrorOf(history.Options(), "UPDATE sqlite_master SET sql = NULL") ==
          "table sqlite_master may not be modified");
    CHECK(ErrorOf(history.Options(), "DELETE FROM sqlite_schema") ==
          "table sqlite_master may not be modified");
    CHECK(ErrorOf(history.Options(), "EXPLAIN DELETE FROM ders") ==
          "query refused: writes are not allowed (DELETE on table 'ders')");
  }
  SECTION("VACUUM INTO creates no file") {
    fs::path copy = history.dir() / "copy.db";
    CHECK(ErrorOf(history.Options(), fmt::format("VACUUM INTO '{}'", copy.string())) ==
          "query refused: writes are not allowed (VACUUM)");
    CHECK_FALSE(fs::exists(copy));
  }
  SECTION("a write hidden after a read is refused as a second statement") {
    CHECK_THAT(ErrorOf(history.Options(), "SELECT 1; DELETE FROM ders"),
               Catch::StartsWith("query refused: one statement at a time"));
  }
  CHECK(history.Dump() == before);
}

TEST_CASE("ATTACH and DETACH are refused and create no file", "[query]") {
  HistoryDb history;
  const std::string before = history.Dump();
  fs::path other = history.dir() / "other.db";
  CHECK(ErrorOf(history.Options(), fmt::format("ATTACH DATABASE '{}' AS other", other.string())) ==
        fmt::format("query refused: ATTACH is not allowed: it could create or write another "
                    "file ('{}')",
                    other.string()));
  CHECK(ErrorOf(history.Options(), "ATTACH ':memory:' AS scratch") ==
        "query refused: ATTACH is not allowed: it could create or write another file "
        "(':memory:')");
  CHECK(ErrorOf(history.Options(), "DETACH main") ==
        "query refused: DETACH is not allowed ('main')");
  CHECK_FALSE(fs::exists(other));
  CHECK(history.Dump() == before);
}

TEST_CASE("a writing PRAGMA is refused and a reading one is allowed", "[query]") {
  HistoryDb history;
  const std::string before = history.Dump();
  CHECK(RowsOf(history.Options(), "PRAGMA user_version").rows ==
        std::vector<std::vector<Value>>{{int64_t{3}}});
  CHECK(RowsOf(history.Options(), "pragma JOURNAL_MODE").rows ==
        std::vector<std::vector<Value>>{{std::string("wal")}});
  QueryResult info = RowsOf(history.Options(), "PRAGMA table_info(telemetry)");
  CHECK(info.columns[1] == "name");
  CHECK(info.rows.size() == 7);
  CHECK(RowsOf(history.Options(), "PRAGMA index_list('ders')").rows.size() == 1);
  CHECK(RowsOf(history.Options(), "PRAGMA quick_check").rows ==
        std::vector<std::vector<Value>>{{std::string("ok")}});
  CHECK(RowsOf(history.Options(), "SELECT * FROM pragma_user_version").rows ==
        std::vector<std::vector<Value>>{{int64_t{3}}});

  CHECK(ErrorOf(history.Options(), "PRAGMA user_version = 4") ==
        "query refused: PRAGMA user_version = 4 would change a setting; pragmas may only be read");
  CHECK(ErrorOf(history.Options(), "PRAGMA journal_mode = DELETE") ==
        "query refused: PRAGMA journal_mode = DELETE would change a setting; pragmas may only be "
        "read");
  CHECK_THAT(ErrorOf(history.Options(), "PRAGMA wal_checkpoint(TRUNCATE)"),
             Catch::StartsWith("query refused: PRAGMA wal_checkpoint is not on the read-only list "
                               "(application_id, "));
  CHECK_THAT(ErrorOf(history.Options(), "PRAGMA writable_schema = ON"),
             Catch::StartsWith("query refused: PRAGMA writable_schema is not on the read-only"));
  CHECK(history.Dump() == before);
}

TEST_CASE("malformed SQL gives SQLite's message, the offset and a caret", "[query]") {
  HistoryDb history;
  CHECK(ErrorOf(history.Options(), "SELECT * FORM telemetry") ==
        "near \"FORM\": syntax error at offset 9\n"
        "  SELECT * FORM telemetry\n"
        "           ^");
  CHECK(ErrorOf(history.Options(), "SELECT der_id,\n       sco_pct\n  FROM telemetry") ==
        "no such column: sco_pct at offset 22 (line 2, column 8)\n"
        "         sco_pct\n"
        "         ^");
  CHECK(ErrorOf(history.Options(), "SELECT 'ünï', * FORM telemetry") ==
        "near \"FORM\": syntax error at offset 18\n"
        "  SELECT 'ünï', * FORM telemetry\n"
        "                  ^");
  CHECK(ErrorOf(history.Options(), "SELECT * FROM nowhere") == "no such table: nowhere");
  CHECK(ErrorOf(history.Options(), "SELECT (1") == "incomplete input");
  CHECK(ErrorOf(history.Options(), "  -- nothing\n ; ") ==
        "query is empty: it holds no SQL statement");
  CHECK(ErrorOf(history.Options(), std::string("SELECT 1\0 x", 11)) ==
        "query holds a NUL byte at offset 8");

  SECTION("a long line is cut around the caret") {
    std::string sql = "SELECT " + std::string(200, ' ') + "* FORM telemetry";
    CHECK(ErrorOf(history.Options(), sql) ==
          "near \"FORM\": syntax error at offset 209\n"
          "  ..." +
              std::string(48, ' ') +
              "* FORM telemetry\n"
              "  " +
              std::string(53, ' ') + "^");
  }
}

TEST_CASE("only one statement runs at a time", "[query]") {
  HistoryDb history;
  CHECK(ErrorOf(history.Options(), "SELECT 1; SELECT 2") ==
        "query refused: one statement at a time: more SQL follows at offset 10\n"
        "  SELECT 1; SELECT 2\n"
        "            ^");
  CHECK(RowsOf(history.Options(), "SELECT 1;;  /* end */ -- done\n;").rows.size() == 1);
}

TEST_CASE("a timeout stops a runaway recursive CTE", "[query]") {
  HistoryDb history;
  QueryOptions options = history.Options();
  options.timeout_ms = 200;
  CHECK(ErrorOf(options,
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                "SELECT count(*) FROM n") ==
        "query stopped after 200 ms: it ran into its time limit");
  // The same connection settings still answer a query that ends.
  CHECK(RowsOf(options, "SELECT count(*) FROM telemetry").rows ==
        std::vector<std::vector<Value>>{{int64_t{3}}});
}

TEST_CASE("max_rows keeps the first rows and flags the result truncated", "[query]") {
  HistoryDb history;
  QueryOptions options = history.Options();
  const std::string ten =
      "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10) "
      "SELECT x FROM n";
  options.max_rows = 3;
  QueryResult r = RowsOf(options, ten);
  CHECK(r.truncated);
  CHECK(r.rows == std::vector<std::vector<Value>>{{int64_t{1}}, {int64_t{2}}, {int64_t{3}}});
  options.max_rows = 10;
  r = RowsOf(options, ten);
  CHECK_FALSE(r.truncated);
  CHECK(r.rows.size() == 10);
  options.max_rows = 0;
  options.timeout_ms = 0;
  r = RowsOf(options,
             "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000) "
             "SELECT x FROM n");
  CHECK_FALSE(r.truncated);
  CHECK(r.rows.size() == 20000);
}

TEST_CASE("a missing database is an error naming its path and is not created", "[query]") {
  TempDir dir;
  QueryOptions options;
  options.db_path = (dir.path() / "nowhere.db").string();
  CHECK(ErrorOf(options, "SELECT 1") ==
        fmt::format("database '{}' does not exist", options.db_path));
  CHECK_FALSE(fs::exists(options.db_path));
  options.db_path = dir.path().string();
  CHECK(ErrorOf(options, "SELECT 1") ==
        fmt::format("database '{}' is a directory, not a SQLite file", options.db_path));
  options.db_path = (dir.path() / "junk.db").string();
  std::ofstream(options.db_path) << "this is not a database, just some text long enough";
  CHECK(ErrorOf(options, "SELECT count(*) FROM sqlite_schema") ==
        fmt::format("database '{}': file is not a database", options.db_path));
}

TEST_CASE("a query reads while another connection holds an open write transaction", "[query]") {
  HistoryDb history;
  history.Exec("BEGIN IMMEDIATE");
  history.Exec("INSERT INTO ders VALUES ('ev-3', 'ev', 7.2)");
  history.Exec("UPDATE ders SET max_kw = 6 WHERE der_id = 'bat-1'");
  QueryOptions options = history.Options();
  options.timeout_ms = 5000;
  // Sees the last committed state, not the open transaction.
  CHECK(RowsOf(options, "SELECT der_id, max_kw FROM ders ORDER BY der_id").rows ==
        std::vector<std::vector<Value>>{{std::string("bat-1"), 5.0}, {std::string("pv-2"), 3.5}});

  SECTION("and the writer commits while the query is still running") {
    // A function on the query's connection commits the writer's transaction
    // in the middle of the query: the commit must not wait for the reader,
    // and the reader keeps the snapshot it started with.
    struct Writer {
      sqlite3* db;
      int commit_rc = -1;
    } writer{history.db()};
    options.prepare_connection = [&writer](sqlite3* db) {
      int rc = sqlite3_create_function(
          db, "commit_writer", 0, SQLITE_UTF8, &writer,
          [](sqlite3_context* ctx, int, sqlite3_value**) {
            auto* w = static_cast<Writer*>(sqlite3_user_data(ctx));
            w->commit_rc = sqlite3_exec(w->db, "COMMIT", nullptr, nullptr, nullptr);
            sqlite3_result_int(ctx, w->commit_rc);
          },
          nullptr, nullptr);
      return rc == SQLITE_OK ? Status::Ok() : Status::Error("test", "create_function failed");
    };
    QueryResult r = RowsOf(options,
                           "SELECT (SELECT count(*) FROM ders) AS before, "
                           "commit_writer() AS commit_rc, "
                           "(SELECT count(*) FROM ders) AS after");
    CHECK(writer.commit_rc == SQLITE_OK);
    CHECK(r.rows == std::vector<std::vector<Value>>{{int64_t{2}, int64_t{SQLITE_OK}, int64_t{2}}});
    options.prepare_connection = nullptr;
    CHECK(RowsOf(options, "SELECT count(*) FROM ders").rows ==
          std::vector<std::vector<Value>>{{int64_t{3}}});
  }
  SECTION("without blocking it: the writer commits after the query") {
    history.Exec("COMMIT");
    CHECK(RowsOf(options, "SELECT max_kw FROM ders WHERE der_id = 'bat-1'").rows ==
          std::vector<std::vector<Value>>{{6.0}});
  }
}

TEST_CASE("a failing prepare_connection hook is reported with the database path", "[query]") {
  HistoryDb history;
  QueryOptions options = history.Options();
  options.prepare_connection = [](sqlite3*) {
    return Status::Error("rollups_error", "cannot register module 'rollups'");
  };
  auto result = RunReadOnlyQuery(options, "SELECT 1");
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == "rollups_error");
  CHECK(result.status().message() ==
        fmt::format("database '{}': cannot register module 'rollups'", options.db_path));
}

TEST_CASE("every prefix and byte-mangled form of a query fails cleanly or runs", "[query]") {
  HistoryDb history;
  const std::string before = history.Dump();
  QueryOptions options = history.Options();
  options.timeout_ms = 2000;
  const std::vector<std::string> queries = {
      "SELECT der_id, 'ü\"\\n', x'00ff', -1.5e3 FROM telemetry /* c */ WHERE seq IN (1, 2);",
      "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3)\r\n"
      "SELECT * FROM n -- end",
      "UPDATE ders SET max_kw = 1; DELETE FROM ders",
  };
  size_t ran = 0, failed = 0;
  for (const auto& q : queries) {
    std::vector<std::string> variants;
    for (size_t n = 0; n <= q.size(); ++n) variants.push_back(q.substr(0, n));
    for (size_t i = 0; i < q.size(); ++i) {
      for (char c : {'\'', '"', ';', '\xff', '\n', '(', '*'}) {
        std::string v = q;
        v[i] = c;
        variants.push_back(v);
      }
    }
    for (const auto& v : variants) {
      auto result = RunReadOnlyQuery(options, v);
      if (result.ok()) {
        ++ran;
      } else {
        ++failed;
        INFO(v);
        CHECK_FALSE(result.status().message().empty());
      }
    }
  }
  CHECK(ran > 0);
  CHECK(failed > 0);
  CHECK(history.Dump() == before);
}
