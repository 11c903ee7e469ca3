// The plugin's settings, read from mosquitto.conf's `plugin_opt_<key> <value>`
// lines. One struct, the defaults inline; deploy/production/mosquitto.conf
// documents the same keys.
#ifndef DERMS_BROKER_PLUGIN_OPTIONS_H_
#define DERMS_BROKER_PLUGIN_OPTIONS_H_

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace derms::broker {

struct PluginOptions {
  // mosquitto_passwd-compatible file ("user:$7$iterations$salt$hash" lines)
  // checked on CONNECT. Empty: the plugin leaves passwords to mosquitto
  // (for a TLS listener with use_identity_as_username, where the
  // certificate's CN is the user name).
  std::string password_file;
  // User names of each non-DER role. Every other authenticated user whose
  // name is a valid identifier is the DER of that der_id.
  std::set<std::string> aggregators;
  std::set<std::string> operators;
  std::set<std::string> dispatchers;
  // The role of clients without a user name, when Mosquitto lets them in
  // (allow_anonymous true): "none" (default: they may do nothing),
  // "operator", "dispatcher" or "aggregator". For a loopback-only listener
  // such as the demo's, where local tools connect without credentials; a
  // DER never connects anonymously.
  std::string anonymous_role = "none";
  // Which der/+/<leaf> topics operators may read (controls are not among
  // them by default: they are the aggregator's business).
  std::set<std::string> operator_der_leaves = {"birth", "status", "telemetry", "response"};
  // Topics outside derms/v1/ that operators and dispatchers may subscribe to
  // and read, and the aggregator may answer on: MQTT 5 response topics such
  // as dermsctl's "dermsctl/<pid>/reply".
  std::string reply_prefix = "dermsctl/";
  // Largest payload accepted on der/+/..., bytes.
  int64_t max_payload_bytes = 16384;
  // A DER may send telemetry up to rate_factor times as often as the
  // telemetry_interval_s its birth declares (the demo's fast simulated time
  // raises this by its speed).
  double rate_factor = 10;
  // The interval assumed before a DER's birth is seen, seconds.
  double default_interval_s = 60;
  // Messages a DER may send at once above its rate (clock jitter, a
  // reconnect), and historical ones (its offline buffer replayed).
  double rate_burst = 10;
  double historical_burst = 1000;
  // Disconnect a DER after this many telemetry messages dropped in a row;
  // 0: never.
  int64_t kick_after_drops = 0;
  // Seconds between retained derms/v1/broker/status messages.
  int64_t status_interval_s = 5;
  // DERs listed in broker/status as misbehaving most.
  int64_t top_offenders = 5;
};

// Reads (key, value) pairs, keys without the "plugin_opt_" prefix. Errors
// ("invalid_option") name the key, the value and the rule; unknown keys are
// errors, so a typo never silently leaves a default in force.
StatusOr<PluginOptions> ParseOptions(const std::vector<std::pair<std::string, std::string>>& kv);

}  // namespace derms::broker

#endif  // DERMS_BROKER_PLUGIN_OPTIONS_H_
