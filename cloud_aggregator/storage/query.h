// Read-only SQL over the aggregator's SQLite history: one statement, run on a
// connection of its own that can neither write nor block the aggregator's
// writer, with the rows held in memory and rendered as a table, CSV or JSON.
// Used by `dermsctl query` and by the aggregator's scheduled named queries, so
// nothing here knows about a command line.
//
// Thread safety: every call opens and closes its own connection, so any
// thread may call RunReadOnlyQuery, also several at once. The formatters are
// pure functions.
#ifndef DERMS_CLOUD_AGGREGATOR_STORAGE_QUERY_H_
#define DERMS_CLOUD_AGGREGATOR_STORAGE_QUERY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"

struct sqlite3;

namespace derms::storage {

// Called with a freshly opened connection before the query is prepared, to
// register what the query may use (the aggregator's `rollups` virtual table
// module). It runs before the authorizer is installed, so it may also create
// temporary objects; it must not keep the handle, which is closed after the
// query, nor set an authorizer or progress handler (they would be replaced).
// A failure it returns is passed on with the database path in front.
using ConnectionHook = std::function<Status(sqlite3*)>;

struct QueryOptions {
  // The SQLite database to read: the aggregator's default. It is opened with
  // SQLITE_OPEN_READONLY and never created.
  std::string db_path = "./var/derms.db";
  // Wall-clock limit on preparing and running the statement, in ms; 0: none.
  // A reader keeps its WAL snapshot until it finishes, so a runaway query
  // would keep the writer's checkpoints from resetting the WAL file.
  int64_t timeout_ms = 30000;
  // Most rows kept; 0: unlimited. When more rows match, the first max_rows
  // are returned and QueryResult::truncated is set.
  size_t max_rows = 10000;
  // May be empty. See ConnectionHook.
  ConnectionHook prepare_connection;
};

// Raw bytes of a BLOB value.
struct Blob {
  std::string bytes;
  bool operator==(const Blob& other) const { return bytes == other.bytes; }
};

// One SQL value: std::monostate is NULL; TEXT is kept byte for byte as SQLite
// returns it (normally UTF-8).
using Value = std::variant<std::monostate, int64_t, double, std::string, Blob>;

struct QueryResult {
  std::vector<std::string> columns;      // names, as SQLite reports them
  std::vector<std::vector<Value>> rows;  // each row has columns.size() values
  bool truncated = false;                // more rows matched than max_rows
};

// Runs one SQL statement read-only on options.db_path and returns its rows.
//
// Refused, with an error naming what was refused ("query refused: writes are
// not allowed (INSERT on table 'telemetry')"):
//   - anything that writes or changes a schema: INSERT, UPDATE, DELETE,
//     CREATE, DROP, ALTER, REINDEX, ANALYZE, VACUUM (also VACUUM INTO);
//   - ATTACH and DETACH (ATTACH could create or write another file);
//   - BEGIN, COMMIT, ROLLBACK and SAVEPOINT: each query already runs in a
//     read transaction of its own;
//   - the load_extension() function;
//   - a PRAGMA that is not on the read-only list below, or any PRAGMA that is
//     given a value ("PRAGMA user_version = 5"). Allowed without an argument:
//     application_id, auto_vacuum, collation_list, compile_options,
//     data_version, database_list, encoding, freelist_count, function_list,
//     journal_mode, module_list, page_count, page_size, pragma_list,
//     schema_version, table_list, user_version. Allowed with or without an
//     argument naming a table or index (or, for the checks, an error limit):
//     table_info, table_xinfo, index_list, index_info, index_xinfo,
//     foreign_key_list, foreign_key_check, integrity_check, quick_check.
//     The same rules apply to the pragma_* table-valued functions.
// These are enforced by an authorizer (sqlite3_set_authorizer) and, for what
// it cannot see (VACUUM), by sqlite3_stmt_readonly(). The authorizer lets
// through SQLite's own questions about writing sqlite_schema, which it asks
// whenever a virtual table declares its columns; a statement really writing
// it is refused by SQLite itself ("table sqlite_master may not be modified").
// Underneath, the connection is SQLITE_OPEN_READONLY and query_only.
// Everything else that reads is allowed: SELECT, views, functions, recursive
// CTEs, EXPLAIN, eponymous virtual tables and modules registered by
// prepare_connection.
//
// Other errors: the database file missing (named; never created); more than
// one statement ("one statement at a time"); an empty query; SQLite's own
// message for malformed SQL with the byte offset and an excerpt with a caret
// under it; "query stopped after N ms" when timeout_ms runs out.
//
// The database is expected in WAL mode, as the aggregator keeps it: the reader
// takes no lock that blocks the writer and sees the last committed state (an
// open write transaction elsewhere is invisible). In rollback-journal mode a
// reader would hold off the writer's commits while it runs. Like any WAL
// reader it may create the -wal and -shm files next to the database when they
// are missing (so it then needs write access to that directory); it never
// checkpoints and never changes the database or WAL contents.
[[nodiscard]] StatusOr<QueryResult> RunReadOnlyQuery(const QueryOptions& options,
                                                     const std::string& sql);

// Aligned columns for a person: a header, a separator, one line per row and a
// "(N rows)" footer (", truncated" added when the result is). Columns whose
// values are all numbers are right-aligned, others left-aligned; widths count
// UTF-8 code points. NULL shows as NULL, a blob as x'0a1b', a double in its
// shortest round-trip form (always with a '.' or an exponent, e.g. 2.0), and
// control characters in text as \n, \t, \r or \xNN so that a row stays on
// one line. Trailing spaces are trimmed.
std::string FormatTable(const QueryResult& result);

// CSV with a header row, '\n' line ends and RFC 4180 quoting: a field holding
// a comma, a double quote, CR or LF is quoted and its quotes doubled. NULL is
// an empty field and the empty string is "" so the two stay apart. Numbers and
// blobs as in FormatTable; text byte for byte.
std::string FormatCsv(const QueryResult& result);

// A JSON array with one object per row, keyed by column name in column order
// (a repeated name gets a suffix, "id", "id#2", so no key is lost). Integers
// and doubles are JSON numbers (doubles in their shortest round-trip form);
// NaN and infinities, which JSON cannot hold, and NULL are null. Text is a
// JSON string, with quotes, backslashes and every control character escaped
// and invalid UTF-8 replaced by U+FFFD. A blob is a string of its standard
// base64 encoding (RFC 4648, with padding). One object per line:
//   [
//     {"id":1,"name":"a"},
//     {"id":2,"name":null}
//   ]
// and "[]" for no rows; the text always ends with a newline.
// `text` as a JSON string literal (quoted, escaped; invalid UTF-8 becomes
// U+FFFD).
std::string JsonString(const std::string& text);
std::string FormatJson(const QueryResult& result);

}  // namespace derms::storage

#endif  // DERMS_CLOUD_AGGREGATOR_STORAGE_QUERY_H_
