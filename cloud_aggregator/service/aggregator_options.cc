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
  auto tree = vder::VderTree::Build(vders.vders);
  if (!tree.ok()) return tree.status();
  return Status::Ok();
}

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
                                     "schedule.nodes.*"});
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
