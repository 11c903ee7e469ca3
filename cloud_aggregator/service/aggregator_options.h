// Everything the aggregator is configured with. The TOML file documents the
// same fields (cloud_aggregator/aggregator.example.toml); flags override it.
#ifndef DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_OPTIONS_H_
#define DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_OPTIONS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cloud_aggregator/service/vder_config.h"
#include "cloud_aggregator/storage/history_jobs.h"
#include "cloud_aggregator/workflow/stages.h"
#include "common/status.h"

namespace derms::aggregator {

struct AggregatorOptions {
  // MQTT broker, e.g. tcp://127.0.0.1:1883.
  std::string broker_uri = "tcp://127.0.0.1:1883";
  // Client id of the persistent session: keep it stable across restarts so
  // the broker holds QoS 1 messages while the aggregator is down.
  std::string client_id = "derms-aggregator";
  std::string username;
  std::string password;
  // How long the broker keeps the session while we are away (seconds).
  int64_t session_expiry_s = 86400;
  // SQLite database file (created with its directory if missing).
  std::string db_path = "./var/derms.db";
  // A DER silent for this many of its telemetry intervals is offline.
  int64_t offline_after_intervals = 3;
  // Wall seconds between aggregator/status publishes.
  int64_t status_interval_s = 10;
  // Answer grid/{substation}/status with setpoints (the dispatch workflow).
  bool dispatch_enabled = true;
  // How long each dispatched setpoint lasts (device seconds); the next grid
  // status renews it, so a lost aggregator never leaves DERs stuck. Also the
  // horizon of storage headroom: a battery must sustain its setpoint this long.
  int64_t control_duration_s = 300;
  // A new setpoint within this (kW) of the one a DER already follows, with
  // more than half of that control's time left, is not re-sent: small
  // changes of target do not make the fleet thrash.
  double setpoint_deadband_kw = 0.1;
  // Wall milliseconds a run waits for answers before it moves the shortfall
  // of silent, rejecting or clamping members to others.
  int64_t response_timeout_ms = 5000;
  // Rounds of a run: the first allocation plus corrections.
  int64_t max_rounds = 3;
  // Stage 5's frequency term.
  workflow::FrequencyResponse frequency;
  // vder/{id}/status: published on a change of at least `vder_status_change_kw`
  // (or of membership) but at most once per `vder_status_min_interval_ms`,
  // and at least every `vder_status_interval_s` (wall time).
  int64_t vder_status_interval_s = 30;
  int64_t vder_status_min_interval_ms = 1000;
  double vder_status_change_kw = 1.0;
  // Charging schedules ([schedule]). A request naming a DER but no node is
  // priced at the node of the DER's substation, else at `default_node`.
  std::map<std::string, std::string> schedule_nodes;  // substation_id -> pricing node
  std::string schedule_default_node;
  // Priority of the schedule Controls sent to DERs: above dispatch's 0, so
  // the next grid run does not undo an owner's schedule.
  int64_t schedule_priority = 1;
  // Price forecasts for intervals that ended longer ago than this are purged.
  int64_t price_keep_days = 31;
  // Virtual DERs and merit-order costs ([[vder]], [costs]); re-read from
  // `config_path` on SIGHUP.
  VderConfig vders;
  std::string config_path;
  // Messages waiting for the processing thread before Paho's thread waits.
  int64_t inbound_queue = 100000;
  // Telemetry history ([history]): retention and the rollup jobs.
  storage::HistoryOptions history;
  // Append each telemetry message to a journal file beside the database the
  // moment it arrives, and drop it once SQLite has committed it: a crash
  // (even SIGKILL) between the broker's acknowledgement and the commit
  // loses nothing. The journal is replayed at start.
  bool journal = true;
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

  // Ok, or "invalid_value" naming the field and the rule.
  Status Validate() const;
};

// Reads `path` (TOML) into `options`, keeping defaults for absent keys.
Status LoadAggregatorOptions(const std::string& path, AggregatorOptions* options);
// The parts that may change while running ([[vder]], [costs]) and the tree
// they make, checked.
struct Reloadable {
  VderConfig config;
  vder::VderTree tree;
};
StatusOr<Reloadable> LoadReloadable(const std::string& path);

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_OPTIONS_H_
