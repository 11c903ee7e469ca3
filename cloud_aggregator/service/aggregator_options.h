// Everything the aggregator is configured with. The TOML file documents the
// same fields (cloud_aggregator/aggregator.example.toml); flags override it.
#ifndef DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_OPTIONS_H_
#define DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_OPTIONS_H_

#include <cstdint>
#include <string>

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
  // Answer grid/{substation}/status with setpoints (the first dispatch loop).
  bool dispatch_enabled = true;
  // How long each dispatched setpoint lasts (device seconds); the next grid
  // status renews it, so a lost aggregator never leaves DERs stuck.
  int64_t control_duration_s = 300;
  // Imbalance changes smaller than this (kW) send no controls.
  double deadband_kw = 0.5;
  // Messages waiting for the processing thread before Paho's thread waits.
  int64_t inbound_queue = 100000;

  // Ok, or "invalid_value" naming the field and the rule.
  Status Validate() const;
};

// Reads `path` (TOML) into `options`, keeping defaults for absent keys.
Status LoadAggregatorOptions(const std::string& path, AggregatorOptions* options);

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_OPTIONS_H_
