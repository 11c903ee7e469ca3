#include "cloud_aggregator/service/aggregator_options.h"

#include <fmt/format.h>

#include <cmath>

#include "common/config.h"

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
  if (!std::isfinite(deadband_kw) || deadband_kw < 0) {
    return Invalid(fmt::format("dispatch.deadband_kw {} must be a number >= 0", deadband_kw));
  }
  if (inbound_queue < 100) return Invalid("inbound_queue must be >= 100");
  return Status::Ok();
}

Status LoadAggregatorOptions(const std::string& path, AggregatorOptions* o) {
  auto parsed = config::ParseFile(path);
  if (!parsed.ok()) return parsed.status();
  const toml::table& t = *parsed;
  Status s = config::CheckKnownKeys(
      t, path,
      {"broker", "client_id", "session_expiry_s", "db", "status_interval_s", "inbound_queue",
       "credentials.username", "credentials.password", "registry.offline_after_intervals",
       "dispatch.enabled", "dispatch.control_duration_s", "dispatch.deadband_kw"});
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
      config::Get(t, path, "dispatch.deadband_kw", &o->deadband_kw),
  };
  for (const auto& r : results) {
    if (!r.ok()) return r;
  }
  return Status::Ok();
}

}  // namespace derms::aggregator
