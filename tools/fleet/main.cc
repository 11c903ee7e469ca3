// derms-fleet: N simulated edge agents in one process, each with its own MQTT
// session, of mixed types spread over substations, so a demo or a test can
// run hundreds of DERs against a real broker.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "common/cli_overrides.h"
#include "common/logging.h"
#include "common/signals.h"
#include "edge_agent/agent/edge_agent.h"
#include "edge_agent/agent/runner.h"
#include "edge_agent/devices/simulated.h"
#include "feeder/scenario.h"

namespace {

using derms::Status;
using derms::StatusOr;
using derms::edge::AgentOptions;

struct TypeSpec {
  const char* short_name;
  derms::v1::DerType type;
  double discharge_kw, charge_kw, capacity_kwh;
};

// Typical residential and small commercial ratings.
const std::map<std::string, TypeSpec> kTypes = {
    {"battery", {"bat", derms::v1::BATTERY, 10, 10, 20}},
    {"pv", {"pv", derms::v1::PV, 8, 0, 0}},
    {"ev_charger", {"ev", derms::v1::EV_CHARGER, 0, 11, 60}},
    {"flexible_load", {"load", derms::v1::FLEXIBLE_LOAD, 0, 6, 0}},
    {"wind", {"wind", derms::v1::WIND, 50, 0, 0}},
    {"generator", {"gen", derms::v1::GENERATOR, 30, 0, 0}},
    {"ci_load", {"ci", derms::v1::CI_LOAD, 0, 200, 0}},
    {"thermostat", {"hvac", derms::v1::THERMOSTAT, 0, 4, 0}},
};

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// "battery=40,pv=25" -> weights by type name.
StatusOr<std::vector<std::pair<std::string, int>>> ParseMix(const std::string& mix) {
  std::vector<std::pair<std::string, int>> out;
  for (const auto& part : SplitCommas(mix)) {
    auto eq = part.find('=');
    std::string name = part.substr(0, eq);
    if (!kTypes.count(name)) {
      return Status::Error("invalid_value",
                           fmt::format("--mix: type '{}' is not one of battery, pv, ev_charger, "
                                       "flexible_load, wind, generator, ci_load, thermostat",
                                       name));
    }
    int weight = 1;
    if (eq != std::string::npos) {
      try {
        weight = std::stoi(part.substr(eq + 1));
      } catch (const std::exception&) {
        weight = -1;
      }
    }
    if (weight < 0) {
      return Status::Error("invalid_value",
                           fmt::format("--mix: weight of '{}' must be a whole number >= 0", name));
    }
    out.emplace_back(name, weight);
  }
  int total = 0;
  for (const auto& [n, w] : out) total += w;
  if (total == 0) return Status::Error("invalid_value", "--mix: the weights add up to 0");
  return out;
}

// Deterministic assignment of types: the i-th DER takes the type whose share
// of the first i is furthest below its weight, so any prefix of the fleet
// keeps the mix.
std::vector<std::string> AssignTypes(const std::vector<std::pair<std::string, int>>& mix,
                                     int count) {
  int total = 0;
  for (const auto& [n, w] : mix) total += w;
  std::vector<int> given(mix.size(), 0);
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    size_t best = 0;
    double best_gap = -1e9;
    for (size_t k = 0; k < mix.size(); ++k) {
      double gap = (i + 1) * double(mix[k].second) / total - given[k];
      if (gap > best_gap) {
        best_gap = gap;
        best = k;
      }
    }
    ++given[best];
    out.push_back(mix[best].first);
  }
  return out;
}

// "user password" lines (deploy/production/make-credentials.sh's
// passwords.txt): each DER logs in as its der_id with its own password.
StatusOr<std::map<std::string, std::string>> ReadCredentials(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return Status::Error("invalid_value", fmt::format("--credentials '{}': cannot open", path));
  std::map<std::string, std::string> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string user, password;
    if (!(fields >> user >> password)) {
      return Status::Error(
          "invalid_value",
          fmt::format("--credentials '{}' line {}: expected 'user password'", path, n));
    }
    out[user] = password;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"derms-fleet: many simulated edge agents in one process, one MQTT session each."};
  std::string broker = "tcp://127.0.0.1:1883";
  int count = 100;
  std::string substations = "sub-1,sub-2";
  std::string mix = "battery=40,pv=25,ev_charger=15,flexible_load=10,wind=10";
  int64_t telemetry_interval_s = 60;
  int64_t telemetry_qos = 1;
  std::string state_dir = "./var/fleet-state";
  double latitude = 37.7, longitude = -122.4;
  double duration_s = 0;
  std::string log_level = "warn";
  std::string username, password;
  std::string credentials_path, ca_file, cert_dir;
  bool list_ids = false;
  std::string feeder_scenario;
  double pv_scale = 1.0;
  derms::ClockFlags clock_flags;
  app.add_option("--broker", broker, "MQTT broker URI");
  app.add_option("--count", count, "number of DERs (default 100)")->check(CLI::Range(1, 100000));
  app.add_option("--substations", substations, "comma-separated substation ids, round robin");
  app.add_option("--mix", mix,
                 "type weights, e.g. battery=40,pv=25,ev_charger=15,"
                 "flexible_load=10,wind=10,generator=0 (also ci_load, thermostat)");
  app.add_option("--telemetry-interval-s", telemetry_interval_s,
                 "seconds between telemetry messages of each DER (simulated time), default 60")
      ->check(CLI::Range(int64_t{1}, int64_t{86400}));
  app.add_option("--telemetry-qos", telemetry_qos, "0 or 1")->check(CLI::Range(0, 1));
  app.add_option("--state-dir", state_dir, "where each DER's bd_seq and seq survive restarts");
  app.add_option("--latitude", latitude, "centre of the fleet")->check(CLI::Range(-90.0, 90.0));
  app.add_option("--longitude", longitude, "centre of the fleet (sets solar time)")
      ->check(CLI::Range(-180.0, 180.0));
  app.add_option("--duration", duration_s, "stop after this many wall seconds (0: until Ctrl-C)");
  app.add_option("--username", username, "MQTT user name");
  app.add_option("--password", password, "MQTT password");
  app.add_option("--credentials", credentials_path,
                 "per-DER logins: a file of 'user password' lines; each DER logs in as its "
                 "der_id (deploy/production/make-credentials.sh --der-passwords)");
  app.add_flag("--list-ids", list_ids,
               "print the der_id of each DER this --count, --substations and --mix make, one a "
               "line, and exit (for making their credentials)");
  app.add_option("--ca-file", ca_file, "TLS: CA certificate of the broker (ssl:// URIs)");
  app.add_option("--cert-dir", cert_dir,
                 "TLS: a directory of DER certificates, <der_id>.crt and <der_id>.key");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.add_option("--feeder-scenario", feeder_scenario,
                 "instead of --count and --mix: one PV at every PV place of this feeder scenario "
                 "(feeder/scenarios/*.toml), its feeder_node in its birth, at the first substation")
      ->check(CLI::ExistingFile);
  app.add_option("--pv-scale", pv_scale,
                 "with --feeder-scenario: each PV rated this many times the scenario's rating")
      ->check(CLI::Range(0.01, 100.0));
  clock_flags.AddTo(&app);
  CLI11_PARSE(app, argc, argv);

  Status s = derms::logging::Init("fleet", log_level);
  if (!s.ok()) {
    fmt::print(stderr, "{}\n", s.message());
    return 2;
  }
  auto weights = ParseMix(mix);
  if (!weights.ok()) {
    spdlog::error("{}", weights.status().message());
    return 2;
  }
  auto subs = SplitCommas(substations);
  if (subs.empty()) {
    spdlog::error("--substations: at least one substation id is required");
    return 2;
  }
  std::map<std::string, std::string> credentials;
  if (!credentials_path.empty()) {
    auto read = ReadCredentials(credentials_path);
    if (!read.ok()) {
      spdlog::error("{}", read.status().message());
      return 2;
    }
    credentials = std::move(read).value();
  }
  derms::Clock clock = clock_flags.Make();
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> jitter(-0.05, 0.05);
  std::vector<std::unique_ptr<derms::edge::EdgeAgent>> agents;
  auto types = AssignTypes(*weights, count);
  // A feeder's PVs: one agent per PV place of the scenario, where it connects.
  std::vector<derms::feeder::Pv> feeder_pvs;
  std::vector<std::string> feeder_nodes;
  if (!feeder_scenario.empty()) {
    auto scenario = derms::feeder::LoadScenario(feeder_scenario);
    auto model = scenario.ok() ? derms::feeder::LoadScenarioFeeder(*scenario)
                               : derms::StatusOr<derms::feeder::FeederModel>(scenario.status());
    if (!model.ok()) {
      spdlog::error("--feeder-scenario: {}", model.status().message());
      return 2;
    }
    for (const auto& pv : model->pvs) {
      feeder_pvs.push_back(pv);
      feeder_nodes.push_back(fmt::format("{}.{}", model->buses[pv.bus].name, pv.phase + 1));
    }
    count = static_cast<int>(feeder_pvs.size());
    types.assign(feeder_pvs.size(), "pv");
  }
  for (int i = 0; i < count; ++i) {
    const TypeSpec& spec = kTypes.at(types[i]);
    const std::string& sub = feeder_pvs.empty() ? subs[i % subs.size()] : subs[0];
    AgentOptions o;
    o.broker_uri = broker;
    o.der_id = feeder_pvs.empty() ? fmt::format("{}-{}-{:04d}", sub, spec.short_name, i + 1)
                                  : feeder_pvs[i].id;
    if (list_ids) {
      fmt::print("{}\n", o.der_id);
      continue;
    }
    o.substation_id = sub;
    o.feeder_id = fmt::format("{}-f{}", sub, 1 + (i / subs.size()) % 3);
    o.provider_id = (i % 3 == 0) ? "prov-a" : (i % 3 == 1 ? "prov-b" : "prov-c");
    o.tags = {"simulated"};
    o.model = "derms-fleet simulator";
    o.nameplate = {spec.type,         spec.discharge_kw,      spec.charge_kw,
                   spec.capacity_kwh, latitude + jitter(rng), longitude + jitter(rng)};
    if (!feeder_pvs.empty()) {
      o.nameplate.max_discharge_kw = pv_scale * feeder_pvs[i].rated_kw;
      o.nameplate.latitude = latitude;
      o.nameplate.longitude = longitude;  // one place: one sun
      o.feeder_node = feeder_nodes[i];
    }
    o.telemetry_interval_s = telemetry_interval_s;
    o.telemetry_qos = telemetry_qos;
    o.state_dir = state_dir;
    o.outbox = "memory";  // thousands of agents in one process: no SQLite file each
    o.username = username;
    o.password = password;
    if (!credentials_path.empty()) {
      auto it = credentials.find(o.der_id);
      if (it == credentials.end()) {
        spdlog::error("--credentials '{}': no password for der '{}'", credentials_path, o.der_id);
        return 2;
      }
      o.username = o.der_id;
      o.password = it->second;
    }
    o.ca_file = ca_file;
    if (!cert_dir.empty()) {
      o.cert_file = fmt::format("{}/{}.crt", cert_dir, o.der_id);
      o.key_file = fmt::format("{}/{}.key", cert_dir, o.der_id);
    }
    auto device = derms::edge::MakeSimulatedDevice(o.nameplate, 1000 + i, clock.NowMs());
    auto agent = derms::edge::EdgeAgent::Create(o, std::move(device));
    if (!agent.ok()) {
      spdlog::error("{}", agent.status().message());
      return 1;
    }
    agents.push_back(std::move(agent).value());
  }
  if (list_ids) return 0;
  fmt::print("fleet: {} DERs on {} substation(s) -> {}\n", count, subs.size(), broker);
  std::atomic<bool>& stop = derms::InstallStopSignals();
  auto started = std::chrono::steady_clock::now();
  int seconds = 0;
  derms::edge::RunnerOptions runner;
  runner.on_second = [&] {
    if (duration_s > 0 &&
        std::chrono::steady_clock::now() - started >= std::chrono::duration<double>(duration_s)) {
      stop = true;
    }
    if (++seconds % 10 != 0) return;
    size_t online = 0;
    uint64_t telemetry = 0, controls = 0;
    for (const auto& a : agents) {
      online += a->online();
      telemetry += a->counters().telemetry_sent;
      controls += a->counters().controls_received;
    }
    fmt::print("fleet: {}/{} online, {} telemetry sent, {} controls received\n", online,
               agents.size(), telemetry, controls);
  };
  derms::edge::RunAgents(agents, clock, stop, runner);
  return 0;
}
