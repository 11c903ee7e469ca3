// The history module: the periodic work on the database that must not hold
// up message processing, all on the scheduler's background executor: the
// rollup, sealing and retention passes of storage::HistoryJobs, the named
// queries ([[report]]) and the verified online backups ([backup]). What a
// report or backup found is stored in `events` and announced on
// events/report and events/backup from the processing thread.
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_HISTORY_HISTORY_MODULE_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_HISTORY_HISTORY_MODULE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/module.h"
#include "cloud_aggregator/storage/history_jobs.h"
#include "cloud_aggregator/storage/store.h"
#include "common/option_set.h"

namespace derms::aggregator {

struct HistoryModuleOptions {
  // Retention and the rollup jobs ([history]).
  storage::HistoryOptions jobs;
  // Online backups ([backup]) every `backup_interval_s` into `backup_dir`
  // (empty: none), verified and rotated (keep `backup_keep`); then
  // `backup_command` runs with DERMS_BACKUP_FILE set (off-site copy).
  std::string backup_dir;
  int64_t backup_interval_s = 86400;
  int64_t backup_keep = 7;
  std::string backup_command;
  // Named queries ([[report]]): run read-only every `every_s` (wall
  // seconds), stored in `events` and announced on events/report.
  struct Report {
    std::string name;
    std::string sql;
    int64_t every_s = 3600;
    int64_t max_rows = 1000;
  };
  std::vector<Report> reports;

  void Describe(config::OptionSet& set);
  // What Describe cannot say: the reports' rules, the backup interval's
  // bounds when backups are on.
  [[nodiscard]] Status Validate() const;
  // Reads the [[report]] array of tables.
  [[nodiscard]] Status ReadReports(const toml::table& t, const std::string& source);
};

class HistoryModule : public Module {
 public:
  static StatusOr<std::unique_ptr<HistoryModule>> Create(const HistoryModuleOptions& options,
                                                         storage::Store& store,
                                                         const ModulePorts& ports);

  const char* name() const override { return "history"; }
  void AddJobs(Scheduler& scheduler) override;

  // One report or backup now, on the calling thread: the JSON announced.
  std::string RunReport(const HistoryModuleOptions::Report& report, int64_t now_ms) const;
  std::string RunBackup(int64_t now_ms) const;

 private:
  HistoryModule(const HistoryModuleOptions& options, storage::Store& store,
                std::unique_ptr<storage::HistoryJobs> jobs, Outbox& outbox, RecordSink& sink);
  // Stores and announces what a report or backup found.
  void Announce(const std::string& kind, const std::string& name, int64_t at_ms,
                const std::string& payload);

  const HistoryModuleOptions options_;
  storage::Store& store_;
  std::unique_ptr<storage::HistoryJobs> jobs_;
  Outbox& outbox_;
  RecordSink& sink_;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_HISTORY_HISTORY_MODULE_H_
