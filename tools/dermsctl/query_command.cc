#include "tools/dermsctl/query_command.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace derms::dermsctl {
namespace {

// What the command line sets; shared by the parser and the run function.
struct QueryFlags {
  storage::QueryOptions options;
  std::string format = "table";
  double timeout_s = 30;
  int64_t max_rows = 10000;
  std::string sql;
};

int Fail(const std::string& message) {
  fmt::print(stderr, "dermsctl: {}\n", message);
  return 1;
}

}  // namespace

Subcommand AddQueryCommand(CLI::App& app, storage::ConnectionHook prepare_connection) {
  auto flags = std::make_shared<QueryFlags>();
  flags->options.prepare_connection = std::move(prepare_connection);
  flags->timeout_s = static_cast<double>(flags->options.timeout_ms) / 1000;
  flags->max_rows = static_cast<int64_t>(flags->options.max_rows);

  auto* query = app.add_subcommand(
      "query",
      "run one read-only SQL statement on the aggregator's history database and print the "
      "rows (needs no broker; writes, ATTACH and writing PRAGMAs are refused)");
  query->add_option("--db", flags->options.db_path,
                    fmt::format("SQLite database file (default {}, the aggregator's default)",
                                flags->options.db_path));
  query->add_option("--format", flags->format, "table (default), csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  query
      ->add_option("--timeout", flags->timeout_s,
                   fmt::format("stop the query after this many seconds (default {}; 0: never)",
                               flags->timeout_s))
      ->check(CLI::NonNegativeNumber);
  query
      ->add_option(
          "--max-rows", flags->max_rows,
          fmt::format("print at most this many rows (default {}; 0: all)", flags->max_rows))
      ->check(CLI::NonNegativeNumber);
  query->add_option("sql", flags->sql, "the SQL statement, e.g. \"SELECT * FROM ders\"")
      ->required();

  auto run = [flags]() -> int {
    storage::QueryOptions options = flags->options;
    if (!(flags->timeout_s >= 0 && flags->timeout_s <= 1e9)) {  // also NaN
      fmt::print(stderr, "dermsctl: --timeout {}: give seconds in [0, 1e9]\n", flags->timeout_s);
      return 2;
    }
    // Rounded up, so a small positive timeout never becomes "none".
    options.timeout_ms = static_cast<int64_t>(std::ceil(flags->timeout_s * 1000));
    options.max_rows = static_cast<size_t>(flags->max_rows);
    auto result = storage::RunReadOnlyQuery(options, flags->sql);
    if (!result.ok()) {
      Status s = result.status();
      if (s.code() == "not_found") return Fail(s.message() + " (give its path with --db)");
      if (s.code() == "query_timeout") return Fail(s.message() + " (raise --timeout; 0: none)");
      return Fail(s.message());
    }
    std::string text = flags->format == "csv"    ? storage::FormatCsv(*result)
                       : flags->format == "json" ? storage::FormatJson(*result)
                                                 : storage::FormatTable(*result);
    fmt::print("{}", text);
    std::fflush(stdout);
    if (result->truncated) {
      fmt::print(stderr,
                 "dermsctl: only the first {} shown; more matched (raise --max-rows; 0: all)\n",
                 options.max_rows == 1 ? "row is" : fmt::format("{} rows are", options.max_rows));
    }
    return 0;
  };
  return Subcommand{query, std::move(run)};
}

}  // namespace derms::dermsctl
