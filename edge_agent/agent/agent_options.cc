#include "edge_agent/agent/agent_options.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>

#include "common/config.h"
#include "common/feeder_node.h"
#include "common/topics.h"

namespace derms::edge {
namespace {

Status Invalid(std::string message) { return Status::Error("invalid_value", std::move(message)); }

Status CheckKw(std::string_view field, double v) {
  if (!std::isfinite(v) || v < 0)
    return Invalid(fmt::format("{} {} must be a number >= 0", field, v));
  return Status::Ok();
}

}  // namespace

StatusOr<derms::v1::DerType> ParseDerType(std::string_view name) {
  std::string upper;
  for (char c : name)
    upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  derms::v1::DerType type;
  if (upper != "DER_TYPE_UNSPECIFIED" && derms::v1::DerType_Parse(upper, &type)) return type;
  return Invalid(fmt::format(
      "type '{}' is not one of BATTERY, PV, EV_CHARGER, FLEXIBLE_LOAD, WIND, GENERATOR, "
      "CI_LOAD, THERMOSTAT",
      name));
}

Status AgentOptions::Validate() const {
  for (auto [field, value] : {std::pair<const char*, const std::string*>{"der_id", &der_id},
                              {"substation_id", &substation_id}}) {
    Status s = topics::ValidateId(field, *value);
    if (!s.ok()) return Invalid(s.message());
  }
  for (auto [field, value] : {std::pair<const char*, const std::string*>{"feeder_id", &feeder_id},
                              {"provider_id", &provider_id}}) {
    if (value->empty()) continue;
    Status s = topics::ValidateId(field, *value);
    if (!s.ok()) return Invalid(s.message());
  }
  if (!feeder_node.empty()) {
    auto node = ParseFeederNode("feeder_node", feeder_node);
    if (!node.ok()) return Invalid(node.status().message());
  }
  if (broker_uri.empty()) return Invalid("broker must not be empty");
  if (nameplate.type == derms::v1::DER_TYPE_UNSPECIFIED) return Invalid("type is required");
  for (auto [field, v] :
       {std::pair<const char*, double>{"max_discharge_kw", nameplate.max_discharge_kw},
        {"max_charge_kw", nameplate.max_charge_kw},
        {"energy_capacity_kwh", nameplate.energy_capacity_kwh}}) {
    Status s = CheckKw(field, v);
    if (!s.ok()) return s;
  }
  if (nameplate.max_discharge_kw == 0 && nameplate.max_charge_kw == 0) {
    return Invalid("max_discharge_kw and max_charge_kw are both 0: the DER can do nothing");
  }
  if (!(nameplate.latitude >= -90 && nameplate.latitude <= 90)) {
    return Invalid(fmt::format("latitude {} outside [-90, 90]", nameplate.latitude));
  }
  if (!(nameplate.longitude >= -180 && nameplate.longitude <= 180)) {
    return Invalid(fmt::format("longitude {} outside [-180, 180]", nameplate.longitude));
  }
  if (telemetry_interval_s < 1 || telemetry_interval_s > 86400) {
    return Invalid(fmt::format("telemetry_interval_s {} outside [1, 86400]", telemetry_interval_s));
  }
  if (telemetry_qos != 0 && telemetry_qos != 1) {
    return Invalid(fmt::format("telemetry_qos {} must be 0 or 1", telemetry_qos));
  }
  if (default_mode != "natural" && default_mode != "fixed") {
    return Invalid(fmt::format("default.mode '{}' must be natural or fixed", default_mode));
  }
  if (!std::isfinite(default_setpoint_kw)) return Invalid("default.setpoint_kw must be finite");
  if (offline_buffer < 0 || offline_buffer > 1000000) {
    return Invalid(fmt::format("offline_buffer {} outside [0, 1000000]", offline_buffer));
  }
  if (outbox != "sqlite" && outbox != "memory") {
    return Invalid(fmt::format("outbox.store '{}' must be sqlite or memory", outbox));
  }
  if (outbox_max_rows < 1 || outbox_max_rows > 100000000) {
    return Invalid(fmt::format("outbox.max_rows {} outside [1, 100000000]", outbox_max_rows));
  }
  if (outbox_max_bytes < 4096 || outbox_max_bytes > (1LL << 40)) {
    return Invalid(
        fmt::format("outbox.max_bytes {} outside [4096, 1099511627776]", outbox_max_bytes));
  }
  if (outbox_max_age_s < 60 || outbox_max_age_s > 366 * 86400) {
    return Invalid(fmt::format("outbox.max_age_s {} outside [60, 31622400]", outbox_max_age_s));
  }
  if (reconnect_min_ms < 10 || reconnect_max_ms < reconnect_min_ms) {
    return Invalid("reconnect_min_ms must be >= 10 and <= reconnect_max_ms");
  }
  if (nameplate.type == derms::v1::CI_LOAD || nameplate.type == derms::v1::THERMOSTAT) {
    if (nameplate.max_charge_kw <= 0) {
      return Invalid(
          "max_charge_kw must be > 0 for a CI_LOAD or THERMOSTAT: it is the most it draws");
    }
    Status s = nameplate.type == derms::v1::CI_LOAD ? ci_load.Validate() : thermostat.Validate();
    if (!s.ok()) return s;
  }
  for (const auto& tag : tags) {
    if (tag.empty() || tag.size() > 64)
      return Invalid(fmt::format("tag '{}' must be 1 to 64 characters", tag));
  }
  if (device != "simulated" && device != "sunspec") {
    return Invalid(fmt::format("device '{}' must be simulated or sunspec", device));
  }
  if (device == "sunspec") {
    if (nameplate.type != derms::v1::PV && nameplate.type != derms::v1::BATTERY) {
      return Invalid(fmt::format("device sunspec drives a PV or BATTERY DER, not {}",
                                 derms::v1::DerType_Name(nameplate.type)));
    }
    Status s = sunspec.Validate();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status LoadAgentOptions(const std::string& path, AgentOptions* o) {
  auto parsed = config::ParseFile(path);
  if (!parsed.ok()) return parsed.status();
  const toml::table& t = *parsed;
  Status s = config::CheckKnownKeys(t, path,
                                    {"broker",
                                     "der_id",
                                     "type",
                                     "telemetry_interval_s",
                                     "telemetry_qos",
                                     "state_dir",
                                     "offline_buffer",
                                     "reconnect_min_ms",
                                     "reconnect_max_ms",
                                     "nameplate.max_discharge_kw",
                                     "nameplate.max_charge_kw",
                                     "nameplate.energy_capacity_kwh",
                                     "nameplate.substation_id",
                                     "nameplate.feeder_id",
                                     "nameplate.feeder_node",
                                     "nameplate.provider_id",
                                     "nameplate.latitude",
                                     "nameplate.longitude",
                                     "nameplate.tags",
                                     "nameplate.model",
                                     "default.mode",
                                     "default.setpoint_kw",
                                     "credentials.username",
                                     "credentials.password",
                                     "credentials.ca_file",
                                     "credentials.cert_file",
                                     "credentials.key_file",
                                     "device",
                                     "sunspec.*",
                                     "outbox.store",
                                     "outbox.path",
                                     "outbox.max_rows",
                                     "outbox.max_bytes",
                                     "outbox.max_age_s",
                                     "ci_load.blocks",
                                     "ci_load.block_share",
                                     "ci_load.min_off_s",
                                     "ci_load.min_on_s",
                                     "ci_load.rebound_share",
                                     "ci_load.rebound_peak_share",
                                     "thermostat.setpoint_c",
                                     "thermostat.comfort_band_c",
                                     "thermostat.resistance_c_per_kw",
                                     "thermostat.capacitance_kwh_per_c",
                                     "thermostat.cop",
                                     "thermostat.outdoor_mean_c",
                                     "thermostat.outdoor_swing_c",
                                     "thermostat.initial_indoor_c",
                                     "thermostat.horizon_s"});
  if (!s.ok()) return s;
  std::string type;
  Status results[] = {
      config::Get(t, path, "broker", &o->broker_uri),
      config::Get(t, path, "der_id", &o->der_id),
      config::Get(t, path, "type", &type),
      config::Get(t, path, "telemetry_interval_s", &o->telemetry_interval_s),
      config::Get(t, path, "telemetry_qos", &o->telemetry_qos),
      config::Get(t, path, "state_dir", &o->state_dir),
      config::Get(t, path, "offline_buffer", &o->offline_buffer),
      config::Get(t, path, "reconnect_min_ms", &o->reconnect_min_ms),
      config::Get(t, path, "reconnect_max_ms", &o->reconnect_max_ms),
      config::Get(t, path, "nameplate.max_discharge_kw", &o->nameplate.max_discharge_kw),
      config::Get(t, path, "nameplate.max_charge_kw", &o->nameplate.max_charge_kw),
      config::Get(t, path, "nameplate.energy_capacity_kwh", &o->nameplate.energy_capacity_kwh),
      config::Get(t, path, "nameplate.substation_id", &o->substation_id),
      config::Get(t, path, "nameplate.feeder_id", &o->feeder_id),
      config::Get(t, path, "nameplate.feeder_node", &o->feeder_node),
      config::Get(t, path, "nameplate.provider_id", &o->provider_id),
      config::Get(t, path, "nameplate.latitude", &o->nameplate.latitude),
      config::Get(t, path, "nameplate.longitude", &o->nameplate.longitude),
      config::Get(t, path, "nameplate.tags", &o->tags),
      config::Get(t, path, "nameplate.model", &o->model),
      config::Get(t, path, "default.mode", &o->default_mode),
      config::Get(t, path, "default.setpoint_kw", &o->default_setpoint_kw),
      config::Get(t, path, "credentials.username", &o->username),
      config::Get(t, path, "credentials.password", &o->password),
      config::Get(t, path, "credentials.ca_file", &o->ca_file),
      config::Get(t, path, "credentials.cert_file", &o->cert_file),
      config::Get(t, path, "credentials.key_file", &o->key_file),
      config::Get(t, path, "device", &o->device),
      sunspec::LoadSunSpecOptions(t, path, &o->sunspec),
      config::Get(t, path, "outbox.store", &o->outbox),
      config::Get(t, path, "outbox.path", &o->outbox_path),
      config::Get(t, path, "outbox.max_rows", &o->outbox_max_rows),
      config::Get(t, path, "outbox.max_bytes", &o->outbox_max_bytes),
      config::Get(t, path, "outbox.max_age_s", &o->outbox_max_age_s),
      config::Get(t, path, "ci_load.min_off_s", &o->ci_load.min_off_s),
      config::Get(t, path, "ci_load.min_on_s", &o->ci_load.min_on_s),
      config::Get(t, path, "ci_load.block_share", &o->ci_load.block_share),
      config::Get(t, path, "ci_load.rebound_share", &o->ci_load.rebound_share),
      config::Get(t, path, "ci_load.rebound_peak_share", &o->ci_load.rebound_peak_share),
      config::Get(t, path, "thermostat.setpoint_c", &o->thermostat.setpoint_c),
      config::Get(t, path, "thermostat.comfort_band_c", &o->thermostat.comfort_band_c),
      config::Get(t, path, "thermostat.resistance_c_per_kw", &o->thermostat.resistance_c_per_kw),
      config::Get(t, path, "thermostat.capacitance_kwh_per_c",
                  &o->thermostat.capacitance_kwh_per_c),
      config::Get(t, path, "thermostat.cop", &o->thermostat.cop),
      config::Get(t, path, "thermostat.outdoor_mean_c", &o->thermostat.outdoor_mean_c),
      config::Get(t, path, "thermostat.outdoor_swing_c", &o->thermostat.outdoor_swing_c),
      config::Get(t, path, "thermostat.initial_indoor_c", &o->thermostat.initial_indoor_c),
      config::Get(t, path, "thermostat.horizon_s", &o->thermostat.horizon_s),
  };
  {
    int64_t blocks = o->ci_load.blocks;
    Status b = config::Get(t, path, "ci_load.blocks", &blocks);
    if (!b.ok()) return b;
    if (blocks < 1 || blocks > 64) {
      return Status::Error("config_error",
                           fmt::format("{}: ci_load.blocks {} outside [1, 64]", path, blocks));
    }
    o->ci_load.blocks = static_cast<int>(blocks);
  }
  for (const auto& r : results) {
    if (!r.ok()) return r;
  }
  if (!type.empty()) {
    auto parsed_type = ParseDerType(type);
    if (!parsed_type.ok()) {
      return Status::Error("config_error",
                           fmt::format("{}: {}", path, parsed_type.status().message()));
    }
    o->nameplate.type = *parsed_type;
  }
  return Status::Ok();
}

}  // namespace derms::edge
