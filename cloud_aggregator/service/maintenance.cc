#include "cloud_aggregator/service/maintenance.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cloud_aggregator/storage/backup.h"
#include "cloud_aggregator/storage/query.h"
#include "cloud_aggregator/storage/rollup_reader.h"
#include "common/topics.h"

namespace derms::aggregator {
Maintenance::Maintenance(const AggregatorOptions& options, storage::Store* store,
                         std::function<int64_t()> now_ms, Publisher publish)
    : options_(options), store_(store), now_ms_(std::move(now_ms)), publish_(std::move(publish)) {
  auto now = std::chrono::steady_clock::now();
  for (const auto& report : options_.reports) {
    auto every = std::chrono::seconds(report.every_s);
    jobs_.push_back(Job{[this, report] { RunReport(report); }, every, now + every});
  }
  if (!options_.backup_dir.empty()) {
    auto every = std::chrono::seconds(options_.backup_interval_s);
    jobs_.push_back(Job{[this] { RunBackup(); }, every, now + every});
  }
  if (!jobs_.empty()) thread_ = std::thread([this] { Loop(); });
}

Maintenance::~Maintenance() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Maintenance::Loop() {
  while (true) {
    auto next = jobs_.front().next;
    for (const auto& job : jobs_) next = std::min(next, job.next);
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (wake_.wait_until(lock, next, [this] { return stopping_; })) return;
    }
    auto now = std::chrono::steady_clock::now();
    for (auto& job : jobs_) {
      if (job.next > now) continue;
      job.run();
      // A job that ran long does not run again at once to catch up.
      job.next = std::max(job.next + job.every, std::chrono::steady_clock::now());
    }
  }
}

std::string Maintenance::RunReport(const AggregatorOptions::Report& report) {
  const int64_t started_ms = now_ms_();
  auto wall = std::chrono::steady_clock::now();
  storage::QueryOptions query;
  query.db_path = store_->path();
  query.max_rows = static_cast<size_t>(report.max_rows);
  query.prepare_connection = storage::RegisterRollups;
  auto result = storage::RunReadOnlyQuery(query, report.sql);
  int64_t duration_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - wall)
          .count();
  std::string payload;
  if (result.ok()) {
    payload = fmt::format(
        "{{\"name\":{},\"timestamp_ms\":{},\"duration_ms\":{},\"rows\":{},\"truncated\":{},"
        "\"result\":{}}}",
        storage::JsonString(report.name), started_ms, duration_ms, result->rows.size(),
        result->truncated ? "true" : "false", storage::FormatJson(*result));
    spdlog::info("report '{}': {} row(s) in {} ms", report.name, result->rows.size(), duration_ms);
  } else {
    payload = fmt::format("{{\"name\":{},\"timestamp_ms\":{},\"duration_ms\":{},\"error\":{}}}",
                          storage::JsonString(report.name), started_ms, duration_ms,
                          storage::JsonString(result.status().message()));
    spdlog::error("report '{}' failed: {}", report.name, result.status().message());
  }
  store_->Add(storage::EventRecord{"report", report.name, started_ms, payload});
  publish_(topics::Event("report"), payload);
  return payload;
}

std::string Maintenance::RunBackup() {
  const int64_t started_ms = now_ms_();
  storage::BackupOptions backup;
  backup.db_path = store_->path();
  backup.dir = options_.backup_dir;
  backup.keep = static_cast<int>(options_.backup_keep);
  backup.command = options_.backup_command;
  auto report = storage::RunBackup(backup, started_ms);
  std::string payload;
  if (report.ok()) {
    std::string tables, removed;
    for (const auto& [table, rows] : report->row_counts) {
      tables += fmt::format("{}{}:{}", tables.empty() ? "" : ",", storage::JsonString(table), rows);
    }
    for (const auto& path : report->removed) {
      removed += (removed.empty() ? "" : ",") + storage::JsonString(path);
    }
    payload = fmt::format(
        "{{\"name\":\"backup\",\"timestamp_ms\":{},\"path\":{},\"bytes\":{},\"duration_ms\":{},"
        "\"verified\":true,\"row_counts\":{{{}}},\"removed\":[{}],\"command_exit\":{},"
        "\"command_error\":{}}}",
        started_ms, storage::JsonString(report->path), report->bytes, report->duration_ms, tables,
        removed, report->command_exit ? std::to_string(*report->command_exit) : "null",
        storage::JsonString(report->command_error));
    spdlog::info("backup {} verified ({} bytes, {} ms){}", report->path, report->bytes,
                 report->duration_ms,
                 report->command_error.empty() ? "" : "; command: " + report->command_error);
  } else {
    payload = fmt::format("{{\"name\":\"backup\",\"timestamp_ms\":{},\"error\":{}}}", started_ms,
                          storage::JsonString(report.status().message()));
    spdlog::error("backup failed: {}", report.status().message());
  }
  store_->Add(storage::EventRecord{"backup", "backup", started_ms, payload});
  publish_(topics::Event("backup"), payload);
  return payload;
}

}  // namespace derms::aggregator
