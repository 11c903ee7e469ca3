// The aggregator's modules wired as the service wires them, to fake ports
// and a stepped clock: what a module test drives with messages and ticks.
#ifndef DERMS_TESTS_MODULES_MODULE_RIG_H_
#define DERMS_TESTS_MODULES_MODULE_RIG_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/router.h"
#include "cloud_aggregator/core/scheduler.h"
#include "cloud_aggregator/modules/charging/charging_module.h"
#include "cloud_aggregator/modules/controls/controls_module.h"
#include "cloud_aggregator/modules/dispatch/dispatch_module.h"
#include "cloud_aggregator/modules/fleet/fleet_module.h"
#include "tests/support/module_fakes.h"

namespace derms::testing {

constexpr int64_t kT0 = 1700000000000;  // the domain clock at the start

struct RigOptions {
  aggregator::FleetOptions fleet;
  aggregator::DispatchOptions dispatch;
  aggregator::ChargingOptions charging;
  std::vector<vder::VderDefinition> vders;
};

class ModuleRig {
 public:
  explicit ModuleRig(RigOptions o = {}) : time(kT0), intake(metrics), router(intake) {
    controls = std::make_unique<aggregator::ControlsModule>(ports);
    auto tree = vder::VderTree::Build(o.vders);
    REQUIRE(tree.ok());
    vder::VderConfig config;
    config.vders = o.vders;
    fleet = std::make_unique<aggregator::FleetModule>(o.fleet, config, std::move(tree).value(),
                                                      ports, *controls);
    dispatch = std::make_unique<aggregator::DispatchModule>(
        o.dispatch, ports, *fleet, *fleet, *controls, controls->ledger(), controls->holds(), 0);
    charging = std::make_unique<aggregator::ChargingModule>(
        o.charging, ports, *fleet, *controls, controls->ledger(), controls->holds(), scheduler,
        [this](const std::string& id) -> std::optional<derms::v1::ScheduleResult> {
          for (const auto& r : archive) {
            if (r.request_id() == id) return r;
          }
          return std::nullopt;
        },
        std::vector<derms::v1::PriceForecast>{});
    controls->AddListener(charging.get());
    controls->AddListener(dispatch.get());
    aggregator::Module* modules[] = {controls.get(), fleet.get(), dispatch.get(), charging.get()};
    for (auto* m : modules) {
      REQUIRE(router.Add(m).ok());
      m->AddJobs(scheduler);
    }
    Tick();
  }

  void Send(const std::string& topic, const std::string& payload,
            const std::string& response_topic = "", const std::string& correlation = "") {
    aggregator::Inbound m = Message(topic, payload, response_topic, correlation);
    router.Route(m, time.NowMs());
  }
  void Tick() { scheduler.Tick(time.MonotonicMs(), time.NowMs()); }
  // Steps both clocks by `ms` in ticks of at most 100 ms.
  void Advance(int64_t ms) {
    while (ms > 0) {
      int64_t step = std::min<int64_t>(ms, 100);
      time.Advance(step);
      ms -= step;
      Tick();
    }
  }

  // A battery born and online with one telemetry sample.
  void Battery(const std::string& der_id, const std::string& substation, double max_kw,
               double soc_pct = 60) {
    derms::v1::DerBirth b;
    b.set_der_id(der_id);
    b.set_bd_seq(1);
    b.set_der_type(derms::v1::BATTERY);
    b.set_max_discharge_kw(max_kw);
    b.set_max_charge_kw(max_kw);
    b.set_energy_capacity_kwh(max_kw * 4);
    b.set_substation_id(substation);
    b.set_timestamp_ms(time.NowMs());
    b.set_telemetry_interval_s(60);
    Send(topics::DerBirth(der_id), codec::ToBinary(b));
    derms::v1::Telemetry t;
    t.set_der_id(der_id);
    t.set_seq(++seq_);
    t.set_timestamp_ms(time.NowMs());
    t.set_active_power_kw(0);
    t.set_soc_pct(soc_pct);
    t.set_voltage_v(240);
    t.set_frequency_hz(60);
    Send(topics::DerTelemetry(der_id), codec::ToBinary(t));
  }
  void Answer(const std::string& der_id, const std::string& command_id,
              derms::v1::ControlStatus status, double applied_kw = 0) {
    derms::v1::ControlResponse r;
    r.set_der_id(der_id);
    r.set_command_id(command_id);
    r.set_status(status);
    r.set_applied_kw(applied_kw);
    if (status == derms::v1::REJECTED || status == derms::v1::CLAMPED) r.set_reason("test says so");
    r.set_timestamp_ms(time.NowMs());
    Send(topics::DerResponse(der_id), codec::ToBinary(r));
  }
  std::vector<derms::v1::Control> ControlsTo(const std::string& der_id) const {
    std::vector<derms::v1::Control> out;
    for (const auto& p : outbox.On(topics::DerControl(der_id))) {
      out.push_back(outbox.Decode<derms::v1::Control>(p));
    }
    return out;
  }
  std::vector<derms::v1::NodeCommand> CommandsTo(const std::string& der_id) const {
    std::vector<derms::v1::NodeCommand> out;
    for (const auto& p : outbox.On(topics::DerCmd(der_id))) {
      out.push_back(outbox.Decode<derms::v1::NodeCommand>(p));
    }
    return out;
  }
  double Metric(const std::string& name, const std::string& label = "") const {
    return metrics.Snapshot(0).Value(name, label);
  }

  FakeOutbox outbox;
  FakeSink sink;
  SteppedTime time;
  aggregator::Metrics metrics;
  aggregator::Intake intake;
  aggregator::Scheduler scheduler;  // no executor: background work runs inline
  aggregator::Router router;
  aggregator::ModulePorts ports{outbox, sink, time, intake, metrics};
  std::vector<derms::v1::ScheduleResult> archive;  // what the "database" holds
  std::unique_ptr<aggregator::ControlsModule> controls;
  std::unique_ptr<aggregator::FleetModule> fleet;
  std::unique_ptr<aggregator::DispatchModule> dispatch;
  std::unique_ptr<aggregator::ChargingModule> charging;

 private:
  uint64_t seq_ = 0;
};

inline vder::VderDefinition GridVder(const std::string& id, const std::string& substation) {
  vder::VderDefinition d;
  d.id = id;
  d.name = id;
  d.members.substations = {substation};
  d.grid_substation = substation;
  return d;
}

}  // namespace derms::testing

#endif  // DERMS_TESTS_MODULES_MODULE_RIG_H_
