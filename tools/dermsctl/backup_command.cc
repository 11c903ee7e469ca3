#include "tools/dermsctl/backup_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "cloud_aggregator/storage/backup.h"

namespace derms::dermsctl {
namespace {

int Fail(const std::string& message) {
  fmt::print(stderr, "dermsctl: {}\n", message);
  return 1;
}

std::string HumanBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

void PrintCounts(const std::map<std::string, int64_t>& counts) {
  size_t width = 5;
  for (const auto& [table, rows] : counts) width = std::max(width, table.size());
  fmt::print("    {:<{}}  {:>12}\n", "table", width, "rows");
  for (const auto& [table, rows] : counts) fmt::print("    {:<{}}  {:>12}\n", table, width, rows);
}

int64_t TotalRows(const std::map<std::string, int64_t>& counts) {
  int64_t total = 0;
  for (const auto& [table, rows] : counts) total += rows;
  return total;
}

struct BackupArgs {
  storage::BackupOptions options;
  std::string verify;
  bool list = false;
};

int RunVerify(const std::string& path) {
  auto report = storage::VerifyBackup(path);
  if (!report.ok()) return Fail(report.status().message());
  fmt::print("{}: verified (integrity_check ok), {} ({} bytes), {} tables, {} rows\n", report->path,
             HumanBytes(report->bytes), report->bytes, report->row_counts.size(),
             TotalRows(report->row_counts));
  PrintCounts(report->row_counts);
  return 0;
}

int RunList(const std::string& dir) {
  auto backups = storage::ListBackups(dir);
  if (backups.empty()) {
    fmt::print("no backups in '{}'\n", dir);
    return 0;
  }
  for (const auto& path : backups) {
    std::error_code ec;
    auto bytes = std::filesystem::file_size(path, ec);
    fmt::print("{}  {:>10}\n", path,
               ec ? std::string("?") : HumanBytes(static_cast<int64_t>(bytes)));
  }
  return 0;
}

int RunBackupCommand(const BackupArgs& args) {
  if (!args.verify.empty()) return RunVerify(args.verify);
  if (args.list) return RunList(args.options.dir);
  if (args.options.dir.empty()) {
    fmt::print(stderr, "dermsctl: backup: --dir DIR is required (where backups go)\n");
    return 2;
  }
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto report = storage::RunBackup(args.options, now_ms);
  if (!report.ok()) return Fail(report.status().message());
  fmt::print("backup {}\n", report->path);
  fmt::print("  {} ({} bytes), {} tables, {} rows, in {} ms (source snapshot held {} ms)\n",
             HumanBytes(report->bytes), report->bytes, report->row_counts.size(),
             TotalRows(report->row_counts), report->duration_ms, report->snapshot_ms);
  fmt::print("  verified: integrity_check ok; every table's row count equals the source's\n");
  PrintCounts(report->row_counts);
  if (report->removed.empty()) {
    fmt::print("rotated away: nothing (keeping the newest {})\n", args.options.keep);
  } else {
    fmt::print("rotated away (keeping the newest {}):\n", args.options.keep);
    for (const auto& path : report->removed) fmt::print("  {}\n", path);
  }
  int code = 0;
  if (!report->rotate_error.empty()) {
    code = Fail(fmt::format("backup kept at '{}', but rotation failed: {}", report->path,
                            report->rotate_error));
  }
  if (report->command_exit || !report->command_error.empty()) {
    if (report->command_error.empty()) {
      fmt::print("command: exit 0\n");
    } else {
      fmt::print("command: FAILED: {}\n", report->command_error);
      code = Fail(fmt::format("backup kept at '{}', but its command failed: {}", report->path,
                              report->command_error));
    }
  }
  return code;
}

int RunRestoreCommand(const storage::RestoreOptions& options) {
  auto report = storage::Restore(options);
  if (!report.ok()) return Fail(report.status().message());
  fmt::print("restored {} into {} in {} ms\n", options.backup_path, report->db_path,
             report->duration_ms);
  fmt::print(
      "  verified: integrity_check ok; every table's row count equals the backup's ({} rows)\n",
      TotalRows(report->row_counts));
  PrintCounts(report->row_counts);
  if (!report->previous_path.empty()) {
    fmt::print("previous database kept at {}\n", report->previous_path);
  } else if (options.keep_previous) {
    fmt::print("there was no previous database\n");
  } else {
    fmt::print("previous database not kept (--no-keep-previous)\n");
  }
  return 0;
}

}  // namespace

std::vector<Subcommand> AddBackupCommands(CLI::App& app) {
  std::vector<Subcommand> commands;

  auto backup_args = std::make_shared<BackupArgs>();
  auto* backup = app.add_subcommand(
      "backup",
      "back the aggregator's SQLite history up (verified, rotated), verify a backup, or list "
      "backups; works next to a running aggregator");
  storage::BackupOptions& o = backup_args->options;
  auto* db = backup->add_option("--db", o.db_path, "database file")->capture_default_str();
  auto* dir =
      backup->add_option("--dir", o.dir, "directory the backups go to (created if missing)");
  auto* keep = backup->add_option("--keep", o.keep, "keep the newest N backups in --dir")
                   ->capture_default_str()
                   ->check(CLI::PositiveNumber);
  auto* command = backup->add_option(
      "--command", o.command,
      "run after each verified backup via /bin/sh -c, with DERMS_BACKUP_FILE set to the backup's "
      "path (e.g. 'rclone copy \"$DERMS_BACKUP_FILE\" remote:derms/')");
  auto* timeout = backup
                      ->add_option("--command-timeout-s", o.command_timeout_s,
                                   "stop the command after this many seconds")
                      ->capture_default_str()
                      ->check(CLI::PositiveNumber);
  auto* verify = backup->add_option("--verify", backup_args->verify,
                                    "only verify FILE: integrity_check and row counts");
  auto* list = backup->add_flag("--list", backup_args->list, "only list the backups in --dir");
  verify->excludes(db)
      ->excludes(dir)
      ->excludes(keep)
      ->excludes(command)
      ->excludes(timeout)
      ->excludes(list);
  list->needs(dir)->excludes(keep)->excludes(command)->excludes(timeout)->excludes(db);
  commands.push_back({backup, [backup_args] { return RunBackupCommand(*backup_args); }});

  auto restore_options = std::make_shared<storage::RestoreOptions>();
  auto* restore = app.add_subcommand(
      "restore",
      "replace the database with a verified backup, keeping the current one aside; refused while "
      "the aggregator runs");
  restore->add_option("file", restore_options->backup_path, "backup file")->required();
  restore->add_option("--db", restore_options->db_path, "database file to replace")
      ->capture_default_str();
  auto no_keep_previous = std::make_shared<bool>(false);
  restore->add_flag(
      "--no-keep-previous", *no_keep_previous,
      "replace the database without first copying it to <db>.before-restore-<timestamp>");
  commands.push_back({restore, [restore_options, no_keep_previous] {
                        restore_options->keep_previous = !*no_keep_previous;
                        return RunRestoreCommand(*restore_options);
                      }});
  return commands;
}

}  // namespace derms::dermsctl
