#include "cloud_aggregator/service/aggregator_options.h"

#include <fmt/format.h>

#include <set>

#include "common/config.h"

namespace derms::aggregator {

void StorageTuning::Describe(config::OptionSet& set) {
  set.Int("storage.batch_max", &batch_max, 1, 1000000, "most records in one transaction");
  set.Int("storage.gather_ms", &gather_ms, 1, 60000,
          "how long a transaction gathers records before it commits (unless full first)");
  set.Int("storage.queue_capacity", &queue_capacity, 1000, 100000000,
          "records waiting for the writer before the processing thread waits");
  set.Int("storage.pause_records", &pause_records, 1, 100000000,
          "while writes fail: ingest pauses once this many records wait in memory (the broker's "
          "persistent session holds the rest)");
  set.Int("storage.retry_max_ms", &retry_max_ms, 100, 600000,
          "while writes fail: longest wait between retries (the wait doubles from 100 ms)");
  set.Int("storage.close_timeout_ms", &close_timeout_ms, 0, 3600000,
          "stopping while writes fail: how long the writer goes on retrying");
}

storage::StoreOptions StorageTuning::ToStoreOptions(const std::string& path) const {
  storage::StoreOptions o;
  o.path = path;
  o.batch_max = static_cast<size_t>(batch_max);
  o.gather = std::chrono::milliseconds(gather_ms);
  o.queue_capacity = static_cast<size_t>(queue_capacity);
  o.pause_records = static_cast<size_t>(pause_records);
  o.retry_max = std::chrono::milliseconds(retry_max_ms);
  o.close_timeout = std::chrono::milliseconds(close_timeout_ms);
  return o;
}

void AggregatorOptions::Describe(config::OptionSet& set) {
  using Rule = config::OptionSet::TextRule;
  set.Text("broker", &broker_uri, Rule::kRequired, "MQTT broker URI, e.g. tcp://127.0.0.1:1883")
      .Cli("--broker");
  set.Text("client_id", &client_id, Rule::kRequired,
           "client id of the persistent session: keep it stable across restarts")
      .Cli("--client-id");
  set.Int("session_expiry_s", &session_expiry_s, 0, 0xFFFFFFFFLL,
          "how long the broker keeps the session while the aggregator is away");
  set.Text("db", &db_path, Rule::kRequired, "SQLite database file").Cli("--db");
  set.Int("status_interval_s", &status_interval_s, 1, 3600,
          "wall seconds between aggregator/status publishes")
      .Cli("--status-interval-s");
  set.Int("inbound_queue", &inbound_queue, 100, 100000000,
          "messages waiting for the processing thread before the broker is held back");
  set.Text("credentials.username", &username, Rule::kAny, "MQTT user name").Cli("--username");
  set.Text("credentials.password", &password, Rule::kAny, "MQTT password").Cli("--password");
  set.Text("credentials.ca_file", &ca_file, Rule::kAny,
           "TLS: CA certificate of the broker (ssl:// URIs)")
      .Cli("--ca-file");
  set.Text("credentials.cert_file", &cert_file, Rule::kAny, "TLS: client certificate")
      .Cli("--cert-file");
  set.Text("credentials.key_file", &key_file, Rule::kAny, "TLS: client private key")
      .Cli("--key-file");
  set.Flag("history.journal", &journal,
           "journal telemetry on arrival until SQLite commits it (crash safety)");
  storage.Describe(set);
  fleet.Describe(set);
  dispatch.Describe(set);
  schedule.Describe(set);
  curtailment.Describe(set);
  history.Describe(set);
  prometheus.Describe(set);
  set.Elsewhere("vder", "[[vder]] virtual DERs (see the example file)");
  set.Elsewhere("costs.*", "[costs] merit-order costs per kWh: default, type, provider, der");
}

Status AggregatorOptions::Validate() const {
  config::OptionSet set;
  // Describe binds fields; a copy keeps Validate const.
  AggregatorOptions copy = *this;
  copy.Describe(set);
  Status s = set.Validate();
  if (s.ok() && client_id.size() > 128) {
    s = Status::Error("invalid_value", "client_id must be 1 to 128 characters");
  }
  if (s.ok()) s = history.Validate();
  if (s.ok()) {
    auto tree = vder::VderTree::Build(vders.vders);
    if (!tree.ok()) s = tree.status();
  }
  return s;
}

Status LoadAggregatorOptions(const std::string& path, AggregatorOptions* o) {
  auto parsed = config::ParseFile(path);
  if (!parsed.ok()) return parsed.status();
  const toml::table& t = *parsed;
  config::OptionSet set;
  o->Describe(set);
  std::set<std::string> known;
  set.AddKnownKeys(&known);
  Status s = config::CheckKnownKeys(t, path, known);
  if (s.ok()) s = set.Read(t, path);
  if (s.ok()) s = o->history.ReadReports(t, path);
  if (!s.ok()) return s;
  auto vders = vder::ReadVderConfig(t, path);
  if (!vders.ok()) return vders.status();
  o->vders = std::move(vders).value();
  o->config_path = path;
  return Status::Ok();
}

StatusOr<vder::VderConfig> LoadReloadable(const std::string& path) {
  auto parsed = config::ParseFile(path);
  if (!parsed.ok()) return parsed.status();
  return vder::ReadVderConfig(*parsed, path);
}

}  // namespace derms::aggregator
