#include "cloud_aggregator/service/aggregator_options.h"

#include <fmt/format.h>

#include <cmath>

#include "common/config.h"
#include "common/topics.h"

namespace derms::aggregator {
namespace {
Status Invalid(std::string message) { return Status::Error("invalid_value", std::move(message)); }
}  // namespace

Status AggregatorOptions::Validate() const {
  if (broker_uri.empty()) return Invalid("broker must not be empty");
  if (client_id.empty() || client_id.size() > 128) {
    return Invalid("client_id must be 1 to 128 characters");
  }
  if (db_path.empty()) return Invalid("db must not be empty");
  if (session_expiry_s < 0 || session_expiry_s > 0xFFFFFFFFLL) {
    return Invalid(fmt::format("session_expiry_s {} outside [0, 4294967295]", session_expiry_s));
  }
  if (offline_after_intervals < 1 || offline_after_intervals > 1000) {
    return Invalid(fmt::format("registry.offline_after_intervals {} outside [1, 1000]",
                               offline_after_intervals));
  }
  if (status_interval_s < 1 || status_interval_s > 3600) {
    return Invalid(fmt::format("status_interval_s {} outside [1, 3600]", status_interval_s));
  }
  if (control_duration_s < 1 || control_duration_s > 86400) {
    return Invalid(
        fmt::format("dispatch.control_duration_s {} outside [1, 86400]", control_duration_s));
  }
  if (!std::isfinite(setpoint_deadband_kw) || setpoint_deadband_kw < 0) {
    return Invalid(fmt::format("dispatch.setpoint_deadband_kw {} must be a number >= 0",
                               setpoint_deadband_kw));
  }
  if (response_timeout_ms < 10 || response_timeout_ms > 600000) {
    return Invalid(
        fmt::format("dispatch.response_timeout_ms {} outside [10, 600000]", response_timeout_ms));
  }
  if (max_rounds < 1 || max_rounds > 10) {
    return Invalid(fmt::format("dispatch.max_rounds {} outside [1, 10]", max_rounds));
  }
  if (!std::isfinite(frequency.nominal_hz) || frequency.nominal_hz < 40 ||
      frequency.nominal_hz > 70) {
    return Invalid(fmt::format("dispatch.nominal_hz {} outside [40, 70]", frequency.nominal_hz));
  }
  if (!std::isfinite(frequency.droop_kw_per_hz) || frequency.droop_kw_per_hz < 0) {
    return Invalid(fmt::format("dispatch.droop_kw_per_hz {} must be a number >= 0",
                               frequency.droop_kw_per_hz));
  }
  if (!std::isfinite(frequency.deadband_hz) || frequency.deadband_hz < 0 ||
      frequency.deadband_hz > 5) {
    return Invalid(
        fmt::format("dispatch.frequency_deadband_hz {} outside [0, 5]", frequency.deadband_hz));
  }
  if (vder_status_interval_s < 1 || vder_status_interval_s > 86400) {
    return Invalid(
        fmt::format("vder_status.interval_s {} outside [1, 86400]", vder_status_interval_s));
  }
  if (vder_status_min_interval_ms < 0 || vder_status_min_interval_ms > 3600000) {
    return Invalid(fmt::format("vder_status.min_interval_ms {} outside [0, 3600000]",
                               vder_status_min_interval_ms));
  }
  if (!std::isfinite(vder_status_change_kw) || vder_status_change_kw < 0) {
    return Invalid(
        fmt::format("vder_status.change_kw {} must be a number >= 0", vder_status_change_kw));
  }
  if (inbound_queue < 100) return Invalid("inbound_queue must be >= 100");
  for (const auto& [substation, node] : schedule_nodes) {
    if (!topics::IsValidId(substation) || !topics::IsValidId(node)) {
      return Invalid(fmt::format("schedule.nodes.{} = '{}': both must match [A-Za-z0-9_-]{{1,64}}",
                                 substation, node));
    }
  }
  if (!schedule_default_node.empty() && !topics::IsValidId(schedule_default_node)) {
    return Invalid(fmt::format("schedule.default_node '{}' must match [A-Za-z0-9_-]{{1,64}}",
                               schedule_default_node));
  }
  if (schedule_priority < -1000 || schedule_priority > 1000) {
    return Invalid(
        fmt::format("schedule.control_priority {} outside [-1000, 1000]", schedule_priority));
  }
  if (price_keep_days < 1 || price_keep_days > 3650) {
    return Invalid(fmt::format("schedule.keep_prices_days {} outside [1, 3650]", price_keep_days));
  }
  const std::pair<const char*, int64_t> days[] = {
      {"history.raw_days", history.raw_days},
      {"history.rollup_5m_days", history.rollup_5m_days},
      {"history.rollup_1h_days", history.rollup_1h_days},
      {"history.rollup_1d_days", history.rollup_1d_days}};
  for (const auto& [name, value] : days) {
    if (value < 0 || value > 36500) {
      return Invalid(fmt::format("{} {} outside [0, 36500] (0 keeps forever)", name, value));
    }
  }
  if (history.interval_s < 1 || history.interval_s > 3600) {
    return Invalid(fmt::format("history.job_interval_s {} outside [1, 3600]", history.interval_s));
  }
  if (history.grace_s < 0 || history.grace_s > 86400) {
    return Invalid(fmt::format("history.grace_s {} outside [0, 86400]", history.grace_s));
  }
  if (history.seal_after_s < 0 || history.seal_after_s > 30 * 86400) {
    return Invalid(
        fmt::format("history.seal_after_s {} outside [0, 2592000]", history.seal_after_s));
  }
  if (!std::isfinite(history.default_interval_s) || history.default_interval_s < 1 ||
      history.default_interval_s > 86400) {
    return Invalid(fmt::format("history.default_interval_s {} outside [1, 86400]",
                               history.default_interval_s));
  }
  if (!backup_dir.empty() && (backup_interval_s < 60 || backup_interval_s > 30 * 86400)) {
    return Invalid(fmt::format("backup.interval_s {} outside [60, 2592000]", backup_interval_s));
  }
  if (backup_keep < 1 || backup_keep > 1000) {
    return Invalid(fmt::format("backup.keep {} outside [1, 1000]", backup_keep));
  }
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
  auto tree = vder::VderTree::Build(vders.vders);
  if (!tree.ok()) return tree.status();
  return Status::Ok();
}

namespace {

Status ReadReports(const toml::table& t, const std::string& path,
                   std::vector<AggregatorOptions::Report>* out) {
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
    AggregatorOptions::Report report;
    Status results[] = {
        config::Get(*r, where, "name", &report.name),
        config::Get(*r, where, "sql", &report.sql),
        config::Get(*r, where, "every_s", &report.every_s),
        config::Get(*r, where, "max_rows", &report.max_rows),
    };
    for (const auto& result : results) {
      if (!result.ok()) return result;
    }
    out->push_back(std::move(report));
  }
  return Status::Ok();
}

}  // namespace

Status LoadAggregatorOptions(const std::string& path, AggregatorOptions* o) {
  auto parsed = config::ParseFile(path);
  if (!parsed.ok()) return parsed.status();
  const toml::table& t = *parsed;
  Status s = config::CheckKnownKeys(t, path,
                                    {"broker",
                                     "client_id",
                                     "session_expiry_s",
                                     "db",
                                     "status_interval_s",
                                     "inbound_queue",
                                     "credentials.username",
                                     "credentials.password",
                                     "registry.offline_after_intervals",
                                     "dispatch.enabled",
                                     "dispatch.control_duration_s",
                                     "dispatch.setpoint_deadband_kw",
                                     "dispatch.response_timeout_ms",
                                     "dispatch.max_rounds",
                                     "dispatch.nominal_hz",
                                     "dispatch.droop_kw_per_hz",
                                     "dispatch.frequency_deadband_hz",
                                     "vder_status.interval_s",
                                     "vder_status.min_interval_ms",
                                     "vder_status.change_kw",
                                     "vder",
                                     "costs.*",
                                     "schedule.default_node",
                                     "schedule.control_priority",
                                     "schedule.keep_prices_days",
                                     "schedule.nodes.*",
                                     "history.raw_days",
                                     "history.rollup_5m_days",
                                     "history.rollup_1h_days",
                                     "history.rollup_1d_days",
                                     "history.job_interval_s",
                                     "history.grace_s",
                                     "history.seal_after_s",
                                     "history.default_interval_s",
                                     "history.journal",
                                     "backup.dir",
                                     "backup.interval_s",
                                     "backup.keep",
                                     "backup.command",
                                     "report"});
  if (!s.ok()) return s;
  Status results[] = {
      config::Get(t, path, "broker", &o->broker_uri),
      config::Get(t, path, "client_id", &o->client_id),
      config::Get(t, path, "session_expiry_s", &o->session_expiry_s),
      config::Get(t, path, "db", &o->db_path),
      config::Get(t, path, "status_interval_s", &o->status_interval_s),
      config::Get(t, path, "inbound_queue", &o->inbound_queue),
      config::Get(t, path, "credentials.username", &o->username),
      config::Get(t, path, "credentials.password", &o->password),
      config::Get(t, path, "registry.offline_after_intervals", &o->offline_after_intervals),
      config::Get(t, path, "dispatch.enabled", &o->dispatch_enabled),
      config::Get(t, path, "dispatch.control_duration_s", &o->control_duration_s),
      config::Get(t, path, "dispatch.setpoint_deadband_kw", &o->setpoint_deadband_kw),
      config::Get(t, path, "dispatch.response_timeout_ms", &o->response_timeout_ms),
      config::Get(t, path, "dispatch.max_rounds", &o->max_rounds),
      config::Get(t, path, "dispatch.nominal_hz", &o->frequency.nominal_hz),
      config::Get(t, path, "dispatch.droop_kw_per_hz", &o->frequency.droop_kw_per_hz),
      config::Get(t, path, "dispatch.frequency_deadband_hz", &o->frequency.deadband_hz),
      config::Get(t, path, "vder_status.interval_s", &o->vder_status_interval_s),
      config::Get(t, path, "vder_status.min_interval_ms", &o->vder_status_min_interval_ms),
      config::Get(t, path, "vder_status.change_kw", &o->vder_status_change_kw),
      config::Get(t, path, "schedule.default_node", &o->schedule_default_node),
      config::Get(t, path, "schedule.control_priority", &o->schedule_priority),
      config::Get(t, path, "schedule.keep_prices_days", &o->price_keep_days),
      config::Get(t, path, "history.raw_days", &o->history.raw_days),
      config::Get(t, path, "history.rollup_5m_days", &o->history.rollup_5m_days),
      config::Get(t, path, "history.rollup_1h_days", &o->history.rollup_1h_days),
      config::Get(t, path, "history.rollup_1d_days", &o->history.rollup_1d_days),
      config::Get(t, path, "history.job_interval_s", &o->history.interval_s),
      config::Get(t, path, "history.grace_s", &o->history.grace_s),
      config::Get(t, path, "history.seal_after_s", &o->history.seal_after_s),
      config::Get(t, path, "history.default_interval_s", &o->history.default_interval_s),
      config::Get(t, path, "history.journal", &o->journal),
      config::Get(t, path, "backup.dir", &o->backup_dir),
      config::Get(t, path, "backup.interval_s", &o->backup_interval_s),
      config::Get(t, path, "backup.keep", &o->backup_keep),
      config::Get(t, path, "backup.command", &o->backup_command),
      ReadReports(t, path, &o->reports),
  };
  for (const auto& r : results) {
    if (!r.ok()) return r;
  }
  if (const toml::table* nodes = t.at_path("schedule.nodes").as_table()) {
    for (const auto& [substation, node] : *nodes) {
      auto value = node.value_exact<std::string>();
      if (!value) {
        return Status::Error("config_error", fmt::format("{}: schedule.nodes.{} must be a string",
                                                         path, substation.str()));
      }
      o->schedule_nodes[std::string(substation.str())] = *value;
    }
  }
  auto vders = ReadVderConfig(t, path);
  if (!vders.ok()) return vders.status();
  o->vders = std::move(vders).value();
  o->config_path = path;
  return Status::Ok();
}

StatusOr<Reloadable> LoadReloadable(const std::string& path) {
  auto parsed = config::ParseFile(path);
  if (!parsed.ok()) return parsed.status();
  auto vders = ReadVderConfig(*parsed, path);
  if (!vders.ok()) return vders.status();
  auto tree = vder::VderTree::Build(vders->vders);
  if (!tree.ok()) return tree.status();
  return Reloadable{std::move(vders).value(), std::move(tree).value()};
}

}  // namespace derms::aggregator
