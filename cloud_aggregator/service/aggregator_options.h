// Everything the aggregator is configured with: its own keys (broker,
// database, status) and each module's options struct, which declares and
// validates its own section (Describe). The TOML file documents the same
// keys (cloud_aggregator/aggregator.example.toml, held to it by a test);
// flags override it.
#ifndef DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_OPTIONS_H_
#define DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_OPTIONS_H_

#include <cstdint>
#include <string>

#include "cloud_aggregator/modules/charging/charging_module.h"
#include "cloud_aggregator/modules/curtailment/curtailment_module.h"
#include "cloud_aggregator/modules/dispatch/dispatch_module.h"
#include "cloud_aggregator/modules/fleet/fleet_module.h"
#include "cloud_aggregator/modules/history/history_module.h"
#include "cloud_aggregator/modules/prometheus/prometheus_module.h"
#include "cloud_aggregator/storage/store.h"
#include "cloud_aggregator/vder/vder_config.h"
#include "common/option_set.h"
#include "common/status.h"

namespace derms::aggregator {

// [storage]: how the store's writer batches, and how it behaves while the
// disk fails (README "Storage"). Defaults are the store's own.
struct StorageTuning {
  int64_t batch_max = static_cast<int64_t>(storage::StoreOptions{}.batch_max);
  int64_t gather_ms = storage::StoreOptions{}.gather.count();
  int64_t queue_capacity = static_cast<int64_t>(storage::StoreOptions{}.queue_capacity);
  int64_t pause_records = static_cast<int64_t>(storage::StoreOptions{}.pause_records);
  int64_t retry_max_ms = storage::StoreOptions{}.retry_max.count();
  int64_t close_timeout_ms = storage::StoreOptions{}.close_timeout.count();

  void Describe(config::OptionSet& set);
  storage::StoreOptions ToStoreOptions(const std::string& path) const;
};

struct AggregatorOptions {
  // MQTT broker, e.g. tcp://127.0.0.1:1883.
  std::string broker_uri = "tcp://127.0.0.1:1883";
  // Client id of the persistent session: keep it stable across restarts so
  // the broker holds QoS 1 messages while the aggregator is down.
  std::string client_id = "derms-aggregator";
  std::string username;
  std::string password;
  // TLS (an ssl:// broker URI): the broker's CA, and a client certificate
  // and key when the broker asks for one. Empty: not used.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // How long the broker keeps the session while we are away (seconds).
  int64_t session_expiry_s = 86400;
  // SQLite database file (created with its directory if missing).
  std::string db_path = "./var/derms.db";
  // Wall seconds between aggregator/status publishes.
  int64_t status_interval_s = 10;
  // Messages waiting for the processing thread before Paho's thread waits.
  int64_t inbound_queue = 100000;
  // Append each telemetry message to a journal file beside the database the
  // moment it arrives, and drop it once SQLite has committed it: a crash
  // (even SIGKILL) between the broker's acknowledgement and the commit
  // loses nothing. The journal is replayed at start.
  bool journal = true;
  StorageTuning storage;         // [storage]

  FleetOptions fleet;            // [registry], [vder_status]
  DispatchOptions dispatch;      // [dispatch]
  ChargingOptions schedule;      // [schedule]
  CurtailmentOptions curtailment;  // [curtailment]
  HistoryModuleOptions history;  // [history], [backup], [[report]]
  PrometheusOptions prometheus;  // [prometheus]
  // Virtual DERs and merit-order costs ([[vder]], [costs]); re-read from
  // `config_path` on SIGHUP.
  vder::VderConfig vders;
  std::string config_path;

  // Every key of the file, each bound to its field (declared once).
  void Describe(config::OptionSet& set);
  // Ok, or "invalid_value" naming the key and the rule.
  [[nodiscard]] Status Validate() const;
};

// Reads `path` (TOML) into `options`, keeping defaults for absent keys.
[[nodiscard]] Status LoadAggregatorOptions(const std::string& path, AggregatorOptions* options);
// The parts that may change while running ([[vder]], [costs]), checked.
StatusOr<vder::VderConfig> LoadReloadable(const std::string& path);

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_OPTIONS_H_
