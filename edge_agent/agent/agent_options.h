// Everything one edge agent is configured with. The TOML file documents the
// same fields (edge_agent/edge-agent.example.toml); flags override the file.
#ifndef DERMS_EDGE_AGENT_AGENT_AGENT_OPTIONS_H_
#define DERMS_EDGE_AGENT_AGENT_AGENT_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "edge_agent/devices/demand_response.h"
#include "edge_agent/devices/device.h"
#include "edge_agent/sunspec/sunspec_options.h"

namespace derms::edge {

struct AgentOptions {
  // MQTT broker, e.g. tcp://127.0.0.1:1883.
  std::string broker_uri = "tcp://127.0.0.1:1883";
  // This DER's identifier: [A-Za-z0-9_-]{1,64}.
  std::string der_id;
  // Ratings and location announced in the birth.
  Nameplate nameplate;
  std::string substation_id;  // required: which substation the DER is dispatched under
  std::string feeder_id;      // optional
  // optional: bus and phase in the feeder's model, "48.1" (feeder curtailment)
  std::string feeder_node;
  std::string provider_id;    // optional: the aggregator or vendor that owns it
  std::vector<std::string> tags;
  std::string model;  // free text: vendor, model, firmware
  // Seconds between telemetry messages (simulated seconds when time runs fast).
  // 300 by default, as real-time markets settle every 5 minutes; 1 or more.
  int64_t telemetry_interval_s = 300;
  // QoS of telemetry: 0 (fire and forget) or 1 (acknowledged).
  int64_t telemetry_qos = 1;
  // With no control in force: "natural" lets the device do what it does on
  // its own (PV produces, batteries idle); "fixed" holds default_setpoint_kw.
  std::string default_mode = "natural";
  double default_setpoint_kw = 0;
  // MQTT credentials; empty for an anonymous broker.
  std::string username;
  std::string password;
  // TLS (an ssl:// broker URI): the CA that signed the broker's certificate;
  // this DER's certificate (CN = der_id) and key when the broker asks for
  // one. Empty: not used.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Where bd_seq and the telemetry sequence survive restarts.
  std::string state_dir = "./var/edge-state";
  // Telemetry kept while the broker is unreachable, sent later as historical
  // (outbox "memory" only).
  int64_t offline_buffer = 1000;
  // Where telemetry waits until the broker acknowledges it: "sqlite", a file
  // that survives the agent's restart and a power loss (the default), or
  // "memory", offline_buffer samples lost on exit (simulators that run
  // thousands of agents in one process).
  std::string outbox = "sqlite";
  // The SQLite outbox file; empty: {state_dir}/{der_id}.outbox.sqlite.
  std::string outbox_path;
  // Caps of the SQLite outbox: beyond any of them the oldest samples are
  // dropped, counted and reported (a warning alarm in the next telemetry).
  int64_t outbox_max_rows = 100000;       // 27 hours of 1-second telemetry
  int64_t outbox_max_bytes = 64LL << 20;  // payload bytes (about 70 a sample)
  int64_t outbox_max_age_s = 7 * 86400;   // by the sample's timestamp
  // Reconnect backoff bounds, wall-clock milliseconds (doubles with jitter).
  int64_t reconnect_min_ms = 500;
  int64_t reconnect_max_ms = 30000;
  // extension: the device the agent drives: "simulated" (demos and tests) or
  // "sunspec" (a SunSpec PV or battery inverter over Modbus TCP, set up by
  // the [sunspec] table / --sunspec-* flags).
  std::string device = "simulated";
  sunspec::SunSpecOptions sunspec;

  // The simulated demand-response models (type CI_LOAD, THERMOSTAT):
  // [ci_load] and [thermostat] in the TOML file.
  CiLoadOptions ci_load;
  ThermostatOptions thermostat;

  // Ok, or "invalid_value" naming the field and the rule.
  Status Validate() const;
};

// Reads `path` (TOML) into `options`, keeping defaults for absent keys.
Status LoadAgentOptions(const std::string& path, AgentOptions* options);

// "BATTERY" -> BATTERY, also lower case and "ev_charger"; error names the value.
StatusOr<derms::v1::DerType> ParseDerType(std::string_view name);

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_AGENT_AGENT_OPTIONS_H_
