#include "cloud_aggregator/modules/history/history_module.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cloud_aggregator/storage/backup.h"
#include "cloud_aggregator/storage/query.h"
#include "cloud_aggregator/storage/rollup_reader.h"
#include "common/config.h"
#include "common/topics.h"

namespace derms::aggregator {
namespace {
Status Invalid(std::string message) { return Status::Error("invalid_value", std::move(message)); }
}  // namespace

void HistoryModuleOptions::Describe(config::OptionSet& set) {
  set.Int("history.raw_days", &jobs.raw_days, 0, 36500,
          "raw telemetry is kept this many days (0: forever)");
  set.Int("history.rollup_5m_days", &jobs.rollup_5m_days, 0, 36500,
          "5-minute rollups are kept this many days (0: forever)");
  set.Int("history.rollup_1h_days", &jobs.rollup_1h_days, 0, 36500,
          "hourly rollups are kept this many days (0: forever)");
  set.Int("history.rollup_1d_days", &jobs.rollup_1d_days, 0, 36500,
          "daily rollups are kept this many days (0: forever)");
  set.Int("history.job_interval_s", &jobs.interval_s, 1, 3600,
          "wall seconds between rollup and retention passes");
  set.Int("history.grace_s", &jobs.grace_s, 0, 86400,
          "a 5-minute bucket is rolled up this long after it ends");
  set.Int("history.seal_after_s", &jobs.seal_after_s, 0, 30 * 86400,
          "a chunk of buckets is compressed this long after it ends");
  set.Real("history.default_interval_s", &jobs.default_interval_s, 1, 86400,
           "telemetry interval assumed for a DER whose birth gave none");
  set.Text("backup.dir", &backup_dir, config::OptionSet::TextRule::kAny,
           "online backups go here (empty: no backups)");
  set.Int("backup.interval_s", &backup_interval_s, 60, 30 * 86400, "wall seconds between backups");
  set.Int("backup.keep", &backup_keep, 1, 1000, "backups kept; older ones are removed");
  set.Text("backup.command", &backup_command, config::OptionSet::TextRule::kAny,
           "run after each verified backup with DERMS_BACKUP_FILE set (off-site copy)");
  set.Elsewhere("report", "[[report]] name, sql, every_s, max_rows: named read-only queries");
}

Status HistoryModuleOptions::Validate() const {
  for (size_t i = 0; i < reports.size(); ++i) {
    const Report& r = reports[i];
    if (!topics::IsValidId(r.name)) {
      return Invalid(
          fmt::format("report[{}].name '{}' must match [A-Za-z0-9_-]{{1,64}}", i, r.name));
    }
    if (r.sql.empty()) return Invalid(fmt::format("report '{}': sql must not be empty", r.name));
    if (r.every_s < 10 || r.every_s > 366 * 86400) {
      return Invalid(
          fmt::format("report '{}': every_s {} outside [10, 31622400]", r.name, r.every_s));
    }
    if (r.max_rows < 1 || r.max_rows > 100000) {
      return Invalid(
          fmt::format("report '{}': max_rows {} outside [1, 100000]", r.name, r.max_rows));
    }
    for (size_t j = 0; j < i; ++j) {
      if (reports[j].name == r.name) {
        return Invalid(fmt::format("report '{}' is defined twice", r.name));
      }
    }
  }
  return Status::Ok();
}

Status HistoryModuleOptions::ReadReports(const toml::table& t, const std::string& path) {
  const toml::node* node = t.get("report");
  if (node == nullptr) return Status::Ok();
  const toml::array* reports = node->as_array();
  if (reports == nullptr) {
    return Status::Error("config_error",
                         fmt::format("{}: report must be an array of tables ([[report]])", path));
  }
  for (size_t i = 0; i < reports->size(); ++i) {
    const toml::table* r = reports->get(i)->as_table();
    std::string where = fmt::format("{}: report[{}]", path, i);
    if (r == nullptr) return Status::Error("config_error", where + " must be a table");
    Status s = config::CheckKnownKeys(*r, where, {"name", "sql", "every_s", "max_rows"});
    if (!s.ok()) return s;
    Report report;
    Status results[] = {
        config::Get(*r, where, "name", &report.name),
        config::Get(*r, where, "sql", &report.sql),
        config::Get(*r, where, "every_s", &report.every_s),
        config::Get(*r, where, "max_rows", &report.max_rows),
    };
    for (const auto& result : results) {
      if (!result.ok()) return result;
    }
    this->reports.push_back(std::move(report));
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<HistoryModule>> HistoryModule::Create(const HistoryModuleOptions& options,
                                                               storage::Store& store,
                                                               const ModulePorts& ports) {
  // No thread of its own (interval 0): the scheduler runs its passes.
  storage::HistoryOptions jobs_options = options.jobs;
  jobs_options.interval_s = 0;
  auto jobs = storage::HistoryJobs::Start(&store, jobs_options,
                                          [&time = ports.time] { return time.NowMs(); });
  if (!jobs.ok()) return jobs.status();
  auto module = std::unique_ptr<HistoryModule>(
      new HistoryModule(options, store, std::move(jobs).value(), ports.outbox, ports.sink));
  const storage::HistoryCounters& c = module->jobs_->counters();
  Gauge& watermark =
      ports.metrics.AddGauge("rollup_watermark_ms", "5-minute buckets before this are rolled up");
  Gauge& buckets = ports.metrics.AddGauge("rollup_buckets_written", "rollup buckets written");
  Gauge& late =
      ports.metrics.AddGauge("rollup_late_buckets", "5-minute buckets redone for late samples");
  Gauge& sealed = ports.metrics.AddGauge("rollup_chunks_sealed", "chunks of buckets compressed");
  Gauge& last_pass =
      ports.metrics.AddGauge("rollup_last_pass_ms", "wall duration of the last pass");
  ports.metrics.AddCollector([&c, &watermark, &buckets, &late, &sealed, &last_pass] {
    watermark.Set(static_cast<double>(c.watermark_ms.load()));
    buckets.Set(static_cast<double>(c.buckets.load()));
    late.Set(static_cast<double>(c.late_buckets.load()));
    sealed.Set(static_cast<double>(c.chunks_sealed.load()));
    last_pass.Set(static_cast<double>(c.last_pass_ms.load()));
  });
  return module;
}

HistoryModule::HistoryModule(const HistoryModuleOptions& options, storage::Store& store,
                             std::unique_ptr<storage::HistoryJobs> jobs, Outbox& outbox,
                             RecordSink& sink)
    : options_(options), store_(store), jobs_(std::move(jobs)), outbox_(outbox), sink_(sink) {}

void HistoryModule::AddJobs(Scheduler& scheduler) {
  scheduler.EveryInBackground("history.rollups", options_.jobs.interval_s * 1000,
                              [this](int64_t now_ms) -> Scheduler::Completion {
                                Status s = jobs_->RunOnce(now_ms);
                                if (!s.ok()) spdlog::error("history jobs: {}", s.message());
                                return nullptr;
                              });
  for (const auto& report : options_.reports) {
    scheduler.EveryInBackground("report." + report.name, report.every_s * 1000,
                                [this, report](int64_t now_ms) -> Scheduler::Completion {
                                  std::string payload = RunReport(report, now_ms);
                                  return [this, name = report.name, now_ms, payload] {
                                    Announce("report", name, now_ms, payload);
                                  };
                                });
  }
  if (!options_.backup_dir.empty()) {
    scheduler.EveryInBackground("backup", options_.backup_interval_s * 1000,
                                [this](int64_t now_ms) -> Scheduler::Completion {
                                  std::string payload = RunBackup(now_ms);
                                  return [this, now_ms, payload] {
                                    Announce("backup", "backup", now_ms, payload);
                                  };
                                });
  }
}

void HistoryModule::Announce(const std::string& kind, const std::string& name, int64_t at_ms,
                             const std::string& payload) {
  sink_.Add(storage::EventRecord{kind, name, at_ms, payload});
  outbox_.Publish(topics::Event(kind), payload);
}

std::string HistoryModule::RunReport(const HistoryModuleOptions::Report& report,
                                     int64_t now_ms) const {
  const int64_t started_ms = now_ms;
  auto wall = std::chrono::steady_clock::now();
  storage::QueryOptions query;
  query.db_path = store_.path();
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
  return payload;
}

std::string HistoryModule::RunBackup(int64_t now_ms) const {
  const int64_t started_ms = now_ms;
  storage::BackupOptions backup;
  backup.db_path = store_.path();
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
  return payload;
}

}  // namespace derms::aggregator
