#include "edge_agent/sunspec/sunspec_options.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/config.h"
#include "edge_agent/sunspec/sunspec_model.h"

namespace derms::sunspec {
namespace {

Status Invalid(std::string message) { return Status::Error("invalid_value", std::move(message)); }

}  // namespace

Status SunSpecOptions::Validate() const {
  if (host.empty()) return Invalid("sunspec.host must not be empty");
  if (port < 1 || port > 65535)
    return Invalid(fmt::format("sunspec.port {} outside [1, 65535]", port));
  if (unit_id < 0 || unit_id > 247) {
    return Invalid(fmt::format("sunspec.unit_id {} outside [0, 247]", unit_id));
  }
  if (base_address < 0 || base_address > 65533) {
    return Invalid(fmt::format("sunspec.base_address {} outside [0, 65533]", base_address));
  }
  if (poll_interval_ms < 100 || poll_interval_ms > 3600000) {
    return Invalid(
        fmt::format("sunspec.poll_interval_ms {} outside [100, 3600000]", poll_interval_ms));
  }
  if (timeout_ms < 10 || timeout_ms > 60000) {
    return Invalid(fmt::format("sunspec.timeout_ms {} outside [10, 60000]", timeout_ms));
  }
  if (reconnect_min_ms < 10 || reconnect_max_ms < reconnect_min_ms) {
    return Invalid("sunspec.reconnect_min_ms must be >= 10 and <= sunspec.reconnect_max_ms");
  }
  auto supported = SupportedModelIds();
  for (int64_t id : models) {
    if (std::find(supported.begin(), supported.end(), id) == supported.end()) {
      return Invalid(fmt::format("sunspec.models: model {} is not one this adapter reads ({})", id,
                                 fmt::join(supported, ", ")));
    }
  }
  return Status::Ok();
}

Status LoadSunSpecOptions(const toml::table& t, std::string_view source, SunSpecOptions* o) {
  const toml::node* node = t.get("sunspec");
  if (!node) return Status::Ok();
  const toml::table* table = node->as_table();
  if (!table)
    return Status::Error("config_error", fmt::format("{}: sunspec must be a table", source));
  Status s =
      config::CheckKnownKeys(*table, fmt::format("{} [sunspec]", source),
                             {"host", "port", "unit_id", "base_address", "poll_interval_ms",
                              "timeout_ms", "reconnect_min_ms", "reconnect_max_ms", "models"});
  if (!s.ok()) return s;
  std::string where = fmt::format("{} [sunspec]", source);
  Status results[] = {
      config::Get(*table, where, "host", &o->host),
      config::Get(*table, where, "port", &o->port),
      config::Get(*table, where, "unit_id", &o->unit_id),
      config::Get(*table, where, "base_address", &o->base_address),
      config::Get(*table, where, "poll_interval_ms", &o->poll_interval_ms),
      config::Get(*table, where, "timeout_ms", &o->timeout_ms),
      config::Get(*table, where, "reconnect_min_ms", &o->reconnect_min_ms),
      config::Get(*table, where, "reconnect_max_ms", &o->reconnect_max_ms),
  };
  for (const auto& r : results) {
    if (!r.ok()) return r;
  }
  if (const toml::node* models = table->get("models")) {
    const toml::array* array = models->as_array();
    if (!array) {
      return Status::Error("config_error",
                           fmt::format("{}: sunspec.models must be an array of model ids", source));
    }
    o->models.clear();
    for (const auto& item : *array) {
      auto id = item.value<int64_t>();
      if (!id || !item.is_integer()) {
        return Status::Error(
            "config_error",
            fmt::format("{}: sunspec.models must hold integers (model ids)", source));
      }
      o->models.push_back(*id);
    }
  }
  return Status::Ok();
}

}  // namespace derms::sunspec
