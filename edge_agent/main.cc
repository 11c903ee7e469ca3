// derms-edge-agent: runs on a DER's controller. Publishes birth, status and
// telemetry; applies controls within the device's limits; answers each one.
// It drives a simulated device, or a SunSpec inverter over Modbus TCP
// (--device sunspec); a vendor plugs another controller in behind edge::Device.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <functional>
#include <string>

#include "common/cli_overrides.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/signals.h"
#include "edge_agent/agent/edge_agent.h"
#include "edge_agent/agent/runner.h"
#include "edge_agent/devices/demand_response.h"
#include "edge_agent/devices/simulated.h"
#include "edge_agent/sunspec/sunspec_device.h"

int main(int argc, char** argv) {
  using derms::edge::AgentOptions;
  CLI::App app{
      "derms-edge-agent: the DERMS edge agent for one DER: a simulated device, or a SunSpec\n"
      "inverter or battery over Modbus TCP (--device sunspec).\n"
      "Settings come from --config FILE (TOML, see edge_agent/edge-agent.example.toml);\n"
      "flags override the file."};
  AgentOptions options;
  std::string config_path;
  std::string type_name;
  std::string log_level = "info";
  derms::ClockFlags clock_flags;
  app.add_option("--config", config_path, "TOML configuration file")->check(CLI::ExistingFile);
  derms::CliOverrides o(&app);
  o.Add("--broker", &options.broker_uri, "MQTT broker URI, e.g. tcp://127.0.0.1:1883");
  o.Add("--der-id", &options.der_id, "this DER's id, [A-Za-z0-9_-]{1,64}");
  app.add_option("--type", type_name,
                 "BATTERY, PV, EV_CHARGER, FLEXIBLE_LOAD, WIND, GENERATOR, CI_LOAD or THERMOSTAT");
  o.Add("--substation", &options.substation_id, "substation the DER is dispatched under");
  o.Add("--feeder", &options.feeder_id, "feeder id (optional)");
  o.Add("--feeder-node", &options.feeder_node,
        "bus and phase in the feeder's model, e.g. 48.1 (optional; feeder curtailment)");
  o.Add("--provider", &options.provider_id, "provider id (optional)");
  o.Add("--tag", &options.tags, "a tag for grouping (repeatable)");
  o.Add("--max-discharge-kw", &options.nameplate.max_discharge_kw, "most export, kW (>= 0)");
  o.Add("--max-charge-kw", &options.nameplate.max_charge_kw, "most import, kW (>= 0)");
  o.Add("--capacity-kwh", &options.nameplate.energy_capacity_kwh, "energy capacity, kWh");
  o.Add("--latitude", &options.nameplate.latitude, "degrees, [-90, 90]");
  o.Add("--longitude", &options.nameplate.longitude, "degrees, [-180, 180] (sets solar time)");
  o.Add("--telemetry-interval-s", &options.telemetry_interval_s,
        "seconds between telemetry messages, default 300, 1 or more");
  o.Add("--telemetry-qos", &options.telemetry_qos, "telemetry QoS, 0 or 1 (default 1)");
  o.Add("--default-mode", &options.default_mode,
        "with no control: natural (device's own behaviour) or fixed");
  o.Add("--default-setpoint-kw", &options.default_setpoint_kw, "setpoint held in fixed mode");
  o.Add("--username", &options.username, "MQTT user name");
  o.Add("--password", &options.password, "MQTT password");
  o.Add("--ca-file", &options.ca_file, "TLS: CA certificate of the broker (ssl:// URIs)");
  o.Add("--cert-file", &options.cert_file, "TLS: this DER's certificate (CN = der_id)");
  o.Add("--key-file", &options.key_file, "TLS: this DER's private key");
  o.Add("--state-dir", &options.state_dir, "where bd_seq and seq survive restarts");
  o.Add("--offline-buffer", &options.offline_buffer,
        "telemetry messages kept while offline (sent later as historical)");
  o.Add("--device", &options.device,
        "simulated (default) or sunspec (a SunSpec PV or battery inverter over Modbus TCP)");
  o.Add("--sunspec-host", &options.sunspec.host, "SunSpec device: Modbus TCP host (127.0.0.1)");
  o.Add("--sunspec-port", &options.sunspec.port, "SunSpec device: Modbus TCP port (502)");
  o.Add("--sunspec-unit-id", &options.sunspec.unit_id, "SunSpec device: Modbus unit id (1)");
  o.Add("--sunspec-base-address", &options.sunspec.base_address,
        "SunSpec device: register of the 'SunS' marker (40000)");
  o.Add("--sunspec-poll-ms", &options.sunspec.poll_interval_ms,
        "SunSpec device: milliseconds between reads (1000, >= 100)");
  o.Add("--sunspec-timeout-ms", &options.sunspec.timeout_ms,
        "SunSpec device: Modbus response timeout (1000)");
  o.Add("--sunspec-model", &options.sunspec.models,
        "SunSpec device: a model id to use (repeatable); default every known model found");
  o.Add("--outbox", &options.outbox,
        "where telemetry waits for the broker's acknowledgement: sqlite (survives restarts, "
        "default) or memory");
  o.Add("--outbox-path", &options.outbox_path,
        "SQLite outbox file (default {state-dir}/{der-id}.outbox.sqlite)");
  o.Add("--outbox-max-rows", &options.outbox_max_rows,
        "samples kept at most; the oldest are dropped (counted) beyond it");
  o.Add("--outbox-max-bytes", &options.outbox_max_bytes, "payload bytes kept at most");
  o.Add("--outbox-max-age-s", &options.outbox_max_age_s, "samples older than this are dropped");
  // Demand-response models (--type CI_LOAD or THERMOSTAT).
  o.Add("--ci-blocks", &options.ci_load.blocks, "C&I load: sheddable blocks (4)");
  o.Add("--ci-block-share", &options.ci_load.block_share,
        "C&I load: each block's share of max-charge-kw (0.15)");
  o.Add("--ci-min-off-s", &options.ci_load.min_off_s, "C&I load: a shed block stays off (300)");
  o.Add("--ci-min-on-s", &options.ci_load.min_on_s, "C&I load: a restarted block runs (900)");
  o.Add("--ci-rebound-share", &options.ci_load.rebound_share,
        "C&I load: share of the shed energy caught up afterwards (0.6)");
  o.Add("--thermostat-setpoint-c", &options.thermostat.setpoint_c,
        "thermostat: indoor set temperature (22)");
  o.Add("--thermostat-band-c", &options.thermostat.comfort_band_c,
        "thermostat: comfort band either side of the setpoint (1.5)");
  o.Add("--thermostat-outdoor-mean-c", &options.thermostat.outdoor_mean_c,
        "thermostat: mean outdoor temperature; above the setpoint it cools (30)");
  clock_flags.AddTo(&app);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);

  derms::Status s = derms::logging::Init("edge", log_level);
  if (!s.ok()) {
    fmt::print(stderr, "{}\n", s.message());
    return 2;
  }
  if (!config_path.empty()) {
    s = derms::edge::LoadAgentOptions(config_path, &options);
    if (!s.ok()) {
      spdlog::error("{}", s.message());
      return 2;
    }
  }
  o.Apply();
  if (!type_name.empty()) {
    auto type = derms::edge::ParseDerType(type_name);
    if (!type.ok()) {
      spdlog::error("--type: {}", type.status().message());
      return 2;
    }
    options.nameplate.type = *type;
  }
  s = options.Validate();
  if (!s.ok()) {
    spdlog::error("configuration: {}", s.message());
    return 2;
  }
  derms::Clock clock = clock_flags.Make();
  std::unique_ptr<derms::edge::Device> device;
  if (options.device == "sunspec") {
    device = std::make_unique<derms::sunspec::SunSpecDevice>(options.sunspec, options.nameplate);
    spdlog::info("der '{}': SunSpec device at {}:{} unit {}, base address {}", options.der_id,
                 options.sunspec.host, options.sunspec.port, options.sunspec.unit_id,
                 options.sunspec.base_address);
  } else if (options.nameplate.type == derms::v1::CI_LOAD) {
    // The demand-response models with their configured parameters.
    device = derms::edge::MakeCiLoad(options.nameplate, options.ci_load, clock.NowMs());
  } else if (options.nameplate.type == derms::v1::THERMOSTAT) {
    device = derms::edge::MakeThermostat(options.nameplate, options.thermostat, clock.NowMs());
  } else {
    device = derms::edge::MakeSimulatedDevice(
        options.nameplate, std::hash<std::string>{}(options.der_id), clock.NowMs());
  }
  auto agent = derms::edge::EdgeAgent::Create(options, std::move(device));
  if (!agent.ok()) {
    spdlog::error("{}", agent.status().message());
    return 1;
  }
  std::vector<std::unique_ptr<derms::edge::EdgeAgent>> agents;
  agents.push_back(std::move(agent).value());
  spdlog::info("der '{}' starting: broker {}, telemetry every {} s", options.der_id,
               options.broker_uri, options.telemetry_interval_s);
  derms::edge::RunAgents(agents, clock, derms::InstallStopSignals());
  return 0;
}
