#include "cloud_aggregator/storage/query.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <string_view>
#include <system_error>

namespace derms::storage {
namespace {

using Clock = std::chrono::steady_clock;

// A WAL reader waits for a lock only in brief moments (another connection
// rebuilding the WAL index after a crash); it gives up after this long.
constexpr int kBusyWaitMs = 2000;
// The timeout is checked every this many virtual machine instructions.
constexpr int kProgressInstructions = 1000;
// An error excerpt longer than this (in code points) is cut around the caret.
constexpr size_t kExcerptMax = 100;
// Longer timeouts are cut to this (about three years), so the deadline fits
// the clock's range.
constexpr int64_t kTimeoutMaxMs = int64_t{100'000'000'000};

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct FinalizeStmt {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};

// What the authorizer and the progress handler share with the query. Lives
// longer than the connection it is registered on.
struct Guard {
  std::string refusal;       // the first thing refused, for the error
  bool pragma_read = false;  // a pragma on the read-only list was allowed
  bool has_deadline = false;
  Clock::time_point deadline;
  bool timed_out = false;
};

std::string Lower(const char* text) {
  std::string s = text ? text : "";
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Quoted(const char* text) { return fmt::format("'{}'", text ? text : ""); }

bool IsSchemaTable(const char* table) {
  std::string name = Lower(table);
  return name == "sqlite_master" || name == "sqlite_schema" || name == "sqlite_temp_master" ||
         name == "sqlite_temp_schema";
}

// Pragmas that read a setting or list something when given no argument (with
// one, most of them would change the setting).
const std::set<std::string>& ReadWithoutArgument() {
  static const std::set<std::string> kPragmas = {
      "application_id", "auto_vacuum", "collation_list", "compile_options", "data_version",
      "database_list",  "encoding",    "freelist_count", "function_list",   "journal_mode",
      "module_list",    "page_count",  "page_size",      "pragma_list",     "schema_version",
      "table_list",     "user_version"};
  return kPragmas;
}

// Pragmas that only read, with or without an argument: a table or index name
// (or, for the checks, the most errors to report).
const std::set<std::string>& ReadWithArgument() {
  static const std::set<std::string> kPragmas = {
      "foreign_key_check", "foreign_key_list", "index_info", "index_list", "index_xinfo",
      "integrity_check",   "quick_check",      "table_info", "table_xinfo"};
  return kPragmas;
}

constexpr const char* kAnalyzeRefusal =
    "writes are not allowed (ANALYZE writes the statistics tables)";

// Empty if the pragma may run, else why not.
std::string CheckPragma(const char* name_text, const char* argument) {
  std::string name = Lower(name_text);
  if (ReadWithArgument().count(name)) return "";
  if (ReadWithoutArgument().count(name)) {
    if (argument == nullptr) return "";
    return fmt::format("PRAGMA {} = {} would change a setting; pragmas may only be read", name,
                       argument);
  }
  std::string allowed;
  for (const auto* list : {&ReadWithoutArgument(), &ReadWithArgument()}) {
    for (const auto& p : *list) allowed += (allowed.empty() ? "" : ", ") + p;
  }
  return fmt::format("PRAGMA {} is not on the read-only list ({})", name, allowed);
}

// The authorizer: called while a statement is prepared (and while a pragma_*
// table-valued function prepares its own pragma). Allows reading, refuses
// everything that writes or has a side effect, and remembers the first
// refusal so the error can say what it was.
int Authorize(void* user, int action, const char* a1, const char* a2, const char* /*schema*/,
              const char* /*trigger_or_view*/) {
  auto* guard = static_cast<Guard*>(user);
  std::string reason;
  auto write = [](const char* what, const char* table) {
    return fmt::format("writes are not allowed ({} on table {})", what, Quoted(table));
  };
  auto schema = [](std::string what) {
    return fmt::format("schema changes are not allowed ({})", what);
  };
  if ((action == SQLITE_INSERT || action == SQLITE_UPDATE || action == SQLITE_DELETE) &&
      IsSchemaTable(a1)) {
    // SQLite asks about these itself, when a virtual table declares its
    // columns (json_each, pragma_*, rollups) and before a CREATE or DROP is
    // named. Allowed here: CREATE and DROP are refused by their own codes, a
    // direct write to the schema table is refused by SQLite, and anything
    // that would still write fails the sqlite3_stmt_readonly() check.
    return SQLITE_OK;
  }
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:  // also columns of (eponymous) virtual tables
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    case SQLITE_FUNCTION:
      if (Lower(a2) != "load_extension") return SQLITE_OK;
      reason = "load_extension() is not allowed";
      break;
    case SQLITE_PRAGMA:
      reason = CheckPragma(a1, a2);
      if (reason.empty()) {
        guard->pragma_read = true;
        return SQLITE_OK;
      }
      break;
    case SQLITE_INSERT:
      reason = write("INSERT", a1);
      break;
    case SQLITE_UPDATE:
      reason = write("UPDATE", a1);
      break;
    case SQLITE_DELETE:
      reason = write("DELETE", a1);
      break;
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_TEMP_TABLE:
      // Only ANALYZE may create a sqlite_stat table; it asks for that first.
      reason = Lower(a1).rfind("sqlite_stat", 0) == 0 ? kAnalyzeRefusal
                                                      : schema("CREATE TABLE " + Quoted(a1));
      break;
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TEMP_INDEX:
      reason = schema(fmt::format("CREATE INDEX {} on table {}", Quoted(a1), Quoted(a2)));
      break;
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER:
      reason = schema(fmt::format("CREATE TRIGGER {} on table {}", Quoted(a1), Quoted(a2)));
      break;
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TEMP_VIEW:
      reason = schema("CREATE VIEW " + Quoted(a1));
      break;
    case SQLITE_CREATE_VTABLE:
      reason = schema(fmt::format("CREATE VIRTUAL TABLE {} USING {}", Quoted(a1), a2 ? a2 : ""));
      break;
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_TABLE:
      reason = schema("DROP TABLE " + Quoted(a1));
      break;
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TEMP_INDEX:
      reason = schema("DROP INDEX " + Quoted(a1));
      break;
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER:
      reason = schema("DROP TRIGGER " + Quoted(a1));
      break;
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TEMP_VIEW:
      reason = schema("DROP VIEW " + Quoted(a1));
      break;
    case SQLITE_DROP_VTABLE:
      reason = schema("DROP VIRTUAL TABLE " + Quoted(a1));
      break;
    case SQLITE_ALTER_TABLE:
      reason = schema("ALTER TABLE " + Quoted(a2));
      break;
    case SQLITE_REINDEX:
      reason = fmt::format("writes are not allowed (REINDEX {})", Quoted(a1));
      break;
    case SQLITE_ANALYZE:
      reason = kAnalyzeRefusal;
      break;
    case SQLITE_ATTACH:
      reason = fmt::format("ATTACH is not allowed: it could create or write another file ({})",
                           Quoted(a1));
      break;
    case SQLITE_DETACH:
      reason = fmt::format("DETACH is not allowed ({})", Quoted(a1));
      break;
    case SQLITE_TRANSACTION:
      reason = fmt::format(
          "transaction control is not needed ({}): each query runs in a read transaction of its "
          "own",
          a1 ? a1 : "");
      break;
    case SQLITE_SAVEPOINT:
      reason = fmt::format(
          "transaction control is not needed (SAVEPOINT {} {}): each query runs in a read "
          "transaction of its own",
          a1 ? a1 : "", Quoted(a2));
      break;
    default:  // anything newer than this list: refused until it is known to be a read
      reason = fmt::format("SQLite action {} is not on the read-only list", action);
      break;
  }
  if (guard->refusal.empty()) guard->refusal = reason;
  return SQLITE_DENY;
}

int CheckDeadline(void* user) {
  auto* guard = static_cast<Guard*>(user);
  if (guard->has_deadline && Clock::now() >= guard->deadline) {
    guard->timed_out = true;
    return 1;  // interrupts the statement
  }
  return 0;
}

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

size_t CodePoints(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return !IsContinuation(c); }));
}

// " at offset N" (with line and column when the SQL has several lines), then
// the line holding that byte with a caret under it, cut to a window around it
// when the line is long.
std::string PointAt(const std::string& sql, size_t offset) {
  offset = std::min(offset, sql.size());
  size_t line_start = offset == 0 ? std::string::npos : sql.rfind('\n', offset - 1);
  line_start = line_start == std::string::npos ? 0 : line_start + 1;
  size_t line_end = sql.find('\n', offset);
  if (line_end == std::string::npos) line_end = sql.size();
  if (line_end > offset && sql[line_end - 1] == '\r') --line_end;
  size_t from = line_start, to = line_end;
  if (CodePoints(std::string_view(sql).substr(line_start, line_end - line_start)) > kExcerptMax) {
    from = std::max(line_start, offset >= kExcerptMax / 2 ? offset - kExcerptMax / 2 : 0);
    to = std::min(line_end, offset + kExcerptMax / 2);
    while (from > line_start && IsContinuation(sql[from])) --from;
    while (to < line_end && IsContinuation(sql[to])) ++to;
  }
  std::string text = sql.substr(from, to - from);
  // One column per character, so the caret lines up.
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  std::string before = from > line_start ? "..." : "";
  std::string after = to < line_end ? "..." : "";
  size_t caret = before.size() + CodePoints(std::string_view(sql).substr(from, offset - from));
  std::string where;
  if (sql.find('\n') != std::string::npos) {
    size_t line = 1 + static_cast<size_t>(std::count(sql.begin(), sql.begin() + line_start, '\n'));
    size_t column = 1 + CodePoints(std::string_view(sql).substr(line_start, offset - line_start));
    where = fmt::format(" (line {}, column {})", line, column);
  }
  return fmt::format(" at offset {}{}\n  {}{}{}\n  {}^", offset, where, before, text, after,
                     std::string(caret, ' '));
}

// The first offset at or after `pos` that is not whitespace, a comment or a
// ';' ending an empty statement; sql.size() if there is none.
size_t SkipBlank(const std::string& sql, size_t pos) {
  while (pos < sql.size()) {
    char c = sql[pos];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == ';') {
      ++pos;
    } else if (sql.compare(pos, 2, "--") == 0) {
      pos = sql.find('\n', pos);
      if (pos == std::string::npos) return sql.size();
    } else if (sql.compare(pos, 2, "/*") == 0) {
      size_t end = sql.find("*/", pos + 2);
      if (end == std::string::npos) return sql.size();  // SQLite ends it at the end, too
      pos = end + 2;
    } else {
      break;
    }
  }
  return pos;
}

// The statement's first word, upper-cased ("VACUUM"), for messages.
std::string FirstKeyword(const std::string& sql) {
  size_t pos = SkipBlank(sql, 0);
  std::string word;
  while (pos < sql.size() && std::isalpha(static_cast<unsigned char>(sql[pos]))) {
    word += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[pos++])));
  }
  return word.empty() ? "this statement" : word;
}

Status Refused(const std::string& reason) {
  return Status::Error("query_refused", "query refused: " + reason);
}

Status TimedOut(int64_t timeout_ms) {
  return Status::Error(
      "query_timeout",
      fmt::format("query stopped after {} ms: it ran into its time limit", timeout_ms));
}

Value ColumnValue(sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER:
      return static_cast<int64_t>(sqlite3_column_int64(stmt, i));
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt, i);
    case SQLITE_TEXT: {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
      return std::string(text ? text : "", static_cast<size_t>(sqlite3_column_bytes(stmt, i)));
    }
    case SQLITE_BLOB: {
      const auto* bytes = static_cast<const char*>(sqlite3_column_blob(stmt, i));
      return Blob{std::string(bytes ? bytes : "",
                              bytes ? static_cast<size_t>(sqlite3_column_bytes(stmt, i)) : 0)};
    }
    default:
      return std::monostate{};
  }
}

}  // namespace

StatusOr<QueryResult> RunReadOnlyQuery(const QueryOptions& options, const std::string& sql) {
  const std::string& path = options.db_path;
  if (path.empty()) return Status::Error("invalid_argument", "query: db_path is empty");
  std::error_code ec;
  auto file = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(file)) {
    return Status::Error("not_found", fmt::format("database '{}' does not exist", path));
  }
  if (std::filesystem::is_directory(file)) {
    return Status::Error("invalid_argument",
                         fmt::format("database '{}' is a directory, not a SQLite file", path));
  }
  if (size_t nul = sql.find('\0'); nul != std::string::npos) {
    return Status::Error("invalid_sql", fmt::format("query holds a NUL byte at offset {}", nul));
  }

  // Declared before the connection, so it outlives the callbacks using it.
  Guard guard;
  sqlite3* raw_db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw_db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, CloseDb> db(raw_db);
  if (rc != SQLITE_OK) {
    return Status::Error("storage_error",
                         fmt::format("cannot open database '{}' read-only: {}", path,
                                     raw_db ? sqlite3_errmsg(raw_db) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  // Leaving the WAL to the writer is the point; SQLITE_OPEN_READONLY already
  // stops a checkpoint on close, this says so.
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
  int busy_ms = kBusyWaitMs;
  if (options.timeout_ms > 0 && options.timeout_ms < busy_ms) {
    busy_ms = static_cast<int>(options.timeout_ms);
  }
  sqlite3_busy_timeout(db.get(), busy_ms);
  if (options.prepare_connection) {
    Status s = options.prepare_connection(db.get());
    if (!s.ok()) {
      return Status::Error(s.code(), fmt::format("database '{}': {}", path, s.message()));
    }
  }
  // Belt and braces under the authorizer: no file (also the temp database)
  // may change from here on.
  char* error = nullptr;
  if (sqlite3_exec(db.get(), "PRAGMA query_only = 1", nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errmsg(db.get());
    sqlite3_free(error);
    return Status::Error("storage_error", fmt::format("database '{}': {}", path, message));
  }
  sqlite3_set_authorizer(db.get(), Authorize, &guard);
  if (options.timeout_ms > 0) {
    guard.has_deadline = true;
    guard.deadline =
        Clock::now() + std::chrono::milliseconds(std::min(options.timeout_ms, kTimeoutMaxMs));
    sqlite3_progress_handler(db.get(), kProgressInstructions, CheckDeadline, &guard);
  }

  int max_length = sqlite3_limit(db.get(), SQLITE_LIMIT_SQL_LENGTH, -1);
  if (sql.size() > static_cast<size_t>(max_length)) {
    return Status::Error("invalid_sql", fmt::format("query is {} bytes, over SQLite's limit of {}",
                                                    sql.size(), max_length));
  }
  // Failures of SQL (syntax, unknown names, refusals) versus of the file.
  auto failure = [&](int code, size_t base) -> Status {
    if (guard.timed_out) return TimedOut(options.timeout_ms);
    if (!guard.refusal.empty()) return Refused(guard.refusal);
    std::string message = sqlite3_errmsg(db.get());
    int offset = sqlite3_error_offset(db.get());
    if (offset >= 0) message += PointAt(sql, base + static_cast<size_t>(offset));
    switch (code & 0xff) {
      case SQLITE_ERROR:
      case SQLITE_RANGE:
      case SQLITE_TOOBIG:
      case SQLITE_MISMATCH:
      case SQLITE_CONSTRAINT:
        return Status::Error("invalid_sql", message);
      default:
        return Status::Error("storage_error", fmt::format("database '{}': {}", path, message));
    }
  };

  // Empty statements (";") before the first one are skipped, as the sqlite3
  // shell does; the offset base keeps error offsets relative to `sql`.
  size_t base = 0;
  sqlite3_stmt* raw_stmt = nullptr;
  const char* tail = nullptr;
  for (;;) {
    rc = sqlite3_prepare_v2(db.get(), sql.data() + base, static_cast<int>(sql.size() - base),
                            &raw_stmt, &tail);
    if (rc != SQLITE_OK) return failure(rc, base);
    size_t next = tail ? static_cast<size_t>(tail - sql.data()) : sql.size();
    if (raw_stmt != nullptr || next <= base || next >= sql.size()) break;
    base = next;
  }
  std::unique_ptr<sqlite3_stmt, FinalizeStmt> stmt(raw_stmt);
  if (!stmt) return Status::Error("invalid_sql", "query is empty: it holds no SQL statement");
  // The authorizer sees no VACUUM (nor VACUUM INTO, which could write a new
  // file): SQLite's own verdict catches it and anything else that writes. A
  // reading PRAGMA journal_mode is the one allowed statement SQLite does not
  // call read-only.
  if (!sqlite3_stmt_readonly(stmt.get()) && !guard.pragma_read) {
    return Refused(fmt::format("writes are not allowed ({})", FirstKeyword(sql.substr(base))));
  }
  size_t rest = SkipBlank(sql, tail ? static_cast<size_t>(tail - sql.data()) : sql.size());
  if (rest < sql.size()) {
    return Refused("one statement at a time: more SQL follows" + PointAt(sql, rest));
  }

  QueryResult result;
  int columns = sqlite3_column_count(stmt.get());
  for (int i = 0; i < columns; ++i) {
    const char* name = sqlite3_column_name(stmt.get(), i);
    result.columns.push_back(name ? name : "");
  }
  for (;;) {
    rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return failure(rc, base);
    if (options.max_rows != 0 && result.rows.size() >= options.max_rows) {
      result.truncated = true;
      break;
    }
    std::vector<Value> row;
    row.reserve(static_cast<size_t>(columns));
    for (int i = 0; i < columns; ++i) row.push_back(ColumnValue(stmt.get(), i));
    result.rows.push_back(std::move(row));
  }
  return result;
}

// ---------------------------------------------------------------------------
// Formatters

namespace {

// Shortest text that reads back as the same double, always with a '.' or an
// exponent so it still reads as a real ("2.0", "1e+20").
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

std::string Base64(const std::string& bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                 static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                 static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    bool two = i + 1 < bytes.size();
    if (two) n |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += two ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Text on one line: control characters as visible escapes.
std::string OneLine(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto b = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (b < 0x20 || b == 0x7f) {
      out += fmt::format("\\x{:02x}", b);
    } else {
      out += c;
    }
  }
  return out;
}

bool IsNumber(const Value& v) {
  return std::holds_alternative<int64_t>(v) || std::holds_alternative<double>(v);
}

// The text of a value in a table (null_text "NULL") or CSV (null_text "").
std::string Plain(const Value& v, const char* null_text) {
  if (std::holds_alternative<std::monostate>(v)) return null_text;
  if (const auto* i = std::get_if<int64_t>(&v)) return fmt::format("{}", *i);
  if (const auto* d = std::get_if<double>(&v)) return FormatDouble(*d);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return "x'" + Hex(std::get<Blob>(v).bytes) + "'";
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t Utf8Length(const std::string& s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b = at(i);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t cp = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    if ((at(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (at(i + k) & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

std::string JsonValue(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return fmt::format("{}", *i);
  if (const auto* d = std::get_if<double>(&v)) return std::isfinite(*d) ? FormatDouble(*d) : "null";
  if (const auto* s = std::get_if<std::string>(&v)) return JsonString(*s);
  if (const auto* b = std::get_if<Blob>(&v)) return "\"" + Base64(b->bytes) + "\"";
  return "null";
}

std::string CsvField(const std::string& text) {
  if (!text.empty() && text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

void RightTrim(std::string* line) { line->erase(line->find_last_not_of(' ') + 1); }

}  // namespace

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    size_t n = Utf8Length(text, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (n > 1) {
      out.append(text, i, n);
      i += n;
      continue;
    }
    char c = text[i++];
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string FormatTable(const QueryResult& result) {
  const size_t n = result.columns.size();
  std::vector<bool> numeric(n, false);
  std::vector<size_t> widths(n, 0);
  std::vector<std::vector<std::string>> cells;
  cells.reserve(result.rows.size());
  for (size_t c = 0; c < n; ++c) widths[c] = CodePoints(OneLine(result.columns[c]));
  for (size_t c = 0; c < n; ++c) {
    bool any_number = false, only_numbers = true;
    for (const auto& row : result.rows) {
      if (IsNumber(row[c])) any_number = true;
      if (!IsNumber(row[c]) && !std::holds_alternative<std::monostate>(row[c])) {
        only_numbers = false;
      }
    }
    numeric[c] = any_number && only_numbers;
  }
  for (const auto& row : result.rows) {
    std::vector<std::string> line;
    for (size_t c = 0; c < n; ++c) {
      line.push_back(OneLine(Plain(row[c], "NULL")));
      widths[c] = std::max(widths[c], CodePoints(line.back()));
    }
    cells.push_back(std::move(line));
  }
  auto render = [&](const std::vector<std::string>& line) {
    std::string out;
    for (size_t c = 0; c < n; ++c) {
      if (c > 0) out += " | ";
      std::string pad(widths[c] - CodePoints(line[c]), ' ');
      out += numeric[c] ? pad + line[c] : line[c] + pad;
    }
    RightTrim(&out);
    return out + "\n";
  };
  std::string out;
  if (n > 0) {
    std::vector<std::string> header;
    for (const auto& name : result.columns) header.push_back(OneLine(name));
    out += render(header);
    for (size_t c = 0; c < n; ++c) {
      if (c > 0) out += "-+-";
      out += std::string(widths[c], '-');
    }
    out += "\n";
    for (const auto& line : cells) out += render(line);
  }
  size_t rows = result.rows.size();
  out += fmt::format("({} {}{})\n", rows, rows == 1 ? "row" : "rows",
                     result.truncated ? ", truncated" : "");
  return out;
}

std::string FormatCsv(const QueryResult& result) {
  std::string out;
  auto line = [&out](const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out += ',';
      out += fields[i];
    }
    out += '\n';
  };
  std::vector<std::string> fields;
  for (const auto& name : result.columns) fields.push_back(CsvField(name));
  line(fields);
  for (const auto& row : result.rows) {
    fields.clear();
    for (const auto& v : row) {
      // NULL stays an empty field; an empty string is quoted ("") by CsvField.
      fields.push_back(std::holds_alternative<std::monostate>(v) ? "" : CsvField(Plain(v, "")));
    }
    line(fields);
  }
  return out;
}

std::string FormatJson(const QueryResult& result) {
  if (result.rows.empty()) return "[]\n";
  std::vector<std::string> keys;
  std::set<std::string> used;
  for (const auto& name : result.columns) {
    std::string key = name;
    for (int k = 2; used.count(key); ++k) key = fmt::format("{}#{}", name, k);
    used.insert(key);
    keys.push_back(JsonString(key));
  }
  std::string out = "[\n";
  for (size_t r = 0; r < result.rows.size(); ++r) {
    out += "  {";
    for (size_t c = 0; c < keys.size(); ++c) {
      if (c > 0) out += ',';
      out += keys[c] + ":" + JsonValue(result.rows[r][c]);
    }
    out += r + 1 < result.rows.size() ? "},\n" : "}\n";
  }
  return out + "]\n";
}

}  // namespace derms::storage
