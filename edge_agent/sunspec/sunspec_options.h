// How the edge agent reaches a SunSpec device over Modbus TCP. The agent's
// TOML file carries the same fields in its [sunspec] table
// (edge_agent/edge-agent.example.toml); --sunspec-* flags override them.
#ifndef DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_OPTIONS_H_
#define DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_OPTIONS_H_

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace derms::sunspec {

struct SunSpecOptions {
  // The device's Modbus TCP server: host name or address, and port.
  std::string host = "127.0.0.1";
  int64_t port = 502;
  // Modbus unit id (slave id) of the device behind that address, [0, 247].
  int64_t unit_id = 1;
  // Where the "SunS" marker is: 40000 on most devices (also 0 or 50000).
  int64_t base_address = 40000;
  // How often the device is read, wall milliseconds; >= 100.
  int64_t poll_interval_ms = 1000;
  // How long one Modbus request may take before it counts as a timeout.
  int64_t timeout_ms = 1000;
  // Reconnect backoff after a lost connection: doubles from min up to max.
  int64_t reconnect_min_ms = 1000;
  int64_t reconnect_max_ms = 30000;
  // Models to use, by id; empty: every discovered model this adapter knows
  // (1, 101-103, 120, 121, 123, 124, 701, 702, 704, 802). A listed model the
  // device does not have is reported as a fault.
  std::vector<int64_t> models;

  // Ok, or "invalid_value" naming the field (as sunspec.<field>) and the rule.
  Status Validate() const;
};

// Reads the [sunspec] table of `t` (if any) into `options`; unknown keys and
// wrong types are "config_error" naming `source` and the key.
Status LoadSunSpecOptions(const toml::table& t, std::string_view source, SunSpecOptions* options);

}  // namespace derms::sunspec

#endif  // DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_OPTIONS_H_
