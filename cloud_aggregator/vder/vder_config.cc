#include "cloud_aggregator/vder/vder_config.h"

#include <fmt/format.h>

#include <cmath>

#include "common/config.h"

namespace derms::vder {
namespace {

Status ConfigError(std::string message) {
  return Status::Error("config_error", std::move(message));
}

StatusOr<vder::VderDefinition> ReadOne(const toml::table& t, const std::string& where) {
  Status s = config::CheckKnownKeys(
      t, where,
      {"id", "name", "policy", "children", "der_types", "substations", "feeders", "providers",
       "tags", "der_ids", "dispatchable", "grid_substation"});
  if (!s.ok()) return s;
  vder::VderDefinition d;
  std::string policy = "pro_rata";
  std::vector<std::string> types;
  Status results[] = {
      config::Get(t, where, "id", &d.id),
      config::Get(t, where, "name", &d.name),
      config::Get(t, where, "policy", &policy),
      config::Get(t, where, "children", &d.children),
      config::Get(t, where, "der_types", &types),
      config::Get(t, where, "substations", &d.members.substations),
      config::Get(t, where, "feeders", &d.members.feeders),
      config::Get(t, where, "providers", &d.members.providers),
      config::Get(t, where, "tags", &d.members.tags),
      config::Get(t, where, "der_ids", &d.members.der_ids),
      config::Get(t, where, "dispatchable", &d.dispatchable),
      config::Get(t, where, "grid_substation", &d.grid_substation),
  };
  for (const auto& r : results) {
    if (!r.ok()) return r;
  }
  if (d.id.empty()) return ConfigError(fmt::format("{}: id is required", where));
  std::string named = fmt::format("{} (vder '{}')", where, d.id);
  auto parsed = dispatch::ParsePolicy(policy);
  if (!parsed) {
    return ConfigError(
        fmt::format("{}: policy '{}' is not one of pro_rata, soc_balance, merit_order, fair_share",
                    named, policy));
  }
  d.policy = *parsed;
  for (const auto& name : types) {
    derms::v1::DerType type;
    if (!derms::v1::DerType_Parse(name, &type) || type == derms::v1::DER_TYPE_UNSPECIFIED) {
      return ConfigError(fmt::format(
          "{}: der_types entry '{}' is not one of BATTERY, PV, EV_CHARGER, FLEXIBLE_LOAD, WIND, "
          "GENERATOR, CI_LOAD, THERMOSTAT",
          named, name));
    }
    d.members.der_types.push_back(type);
  }
  return d;
}

Status ReadCostMap(const toml::table& costs, const std::string& source, const char* kind,
                   std::map<std::string, double>* out) {
  const toml::table* t = costs[kind].as_table();
  if (!costs[kind]) return Status::Ok();
  if (!t) return ConfigError(fmt::format("{}: costs.{} must be a table", source, kind));
  for (const auto& [key, value] : *t) {
    std::optional<double> v = value.value<double>();
    if (!v || !std::isfinite(*v)) {
      return ConfigError(
          fmt::format("{}: costs.{}.{} must be a finite number", source, kind, key.str()));
    }
    (*out)[std::string(key.str())] = *v;
  }
  return Status::Ok();
}

}  // namespace

StatusOr<VderConfig> ReadVderConfig(const toml::table& t, const std::string& source) {
  VderConfig out;
  if (t["vder"]) {
    const toml::array* list = t["vder"].as_array();
    if (!list)
      return ConfigError(fmt::format("{}: vder must be an array of tables ([[vder]])", source));
    for (size_t i = 0; i < list->size(); ++i) {
      const toml::table* entry = (*list)[i].as_table();
      std::string where = fmt::format("{}: vder[{}]", source, i);
      if (!entry) return ConfigError(fmt::format("{} must be a table", where));
      auto d = ReadOne(*entry, where);
      if (!d.ok()) return d.status();
      out.vders.push_back(std::move(d).value());
    }
  }
  if (const toml::table* costs = t["costs"].as_table()) {
    // The options file accepts anything under costs and leaves the keys to
    // us: a misspelt key must not silently leave a cost at its default.
    Status s = config::CheckKnownKeys(
        *costs, source + ": costs",
        {"default", "der", "der.*", "provider", "provider.*", "type", "type.*"});
    if (s.ok()) s = config::Get(*costs, source + ": costs", "default", &out.costs.default_cost);
    if (s.ok() && !std::isfinite(out.costs.default_cost)) {
      s = ConfigError(fmt::format("{}: costs.default must be a finite number", source));
    }
    if (s.ok()) s = ReadCostMap(*costs, source, "der", &out.costs.by_der);
    if (s.ok()) s = ReadCostMap(*costs, source, "provider", &out.costs.by_provider);
    if (s.ok()) s = ReadCostMap(*costs, source, "type", &out.costs.by_type);
    if (!s.ok()) return s;
    for (const auto& [type, cost] : out.costs.by_type) {
      derms::v1::DerType parsed;
      if (!derms::v1::DerType_Parse(type, &parsed) || parsed == derms::v1::DER_TYPE_UNSPECIFIED) {
        return ConfigError(fmt::format("{}: costs.type.{} is not a DER type", source, type));
      }
    }
  } else if (t["costs"]) {
    return ConfigError(fmt::format("{}: costs must be a table", source));
  }
  return out;
}

}  // namespace derms::vder
