// The curtailment module with fake ports and a stepped clock: the IEEE
// 123-bus scenario's PVs born and reporting, a request planned and sent as
// generation limits, the PVs' answers (or silence) deciding the outcome,
// the voltage watch starting runs, and what is recorded.
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cloud_aggregator/modules/curtailment/curtailment_module.h"
#include "common/codec.h"
#include "feeder/scenario.h"
#include "tests/modules/module_rig.h"

using namespace derms;
using namespace derms::testing;

namespace {

constexpr char kFeeder[] = "ieee123";  // the PVs' substation: its implicit virtual DER

std::string ScenarioPath() {
  return std::string(DERMS_SOURCE_DIR) + "/feeder/scenarios/ieee123_overvoltage.toml";
}

// The rig with a curtailment module wired as the service wires it, and the
// scenario's PVs (one per load bus and phase) born, each reporting its
// rated output as available.
struct CurtailmentRig {
  explicit CurtailmentRig(aggregator::CurtailmentOptions options = {}) {
    options.scenario = ScenarioPath();
    auto created = aggregator::CurtailmentModule::Create(options, rig.ports, *rig.fleet,
                                                         *rig.controls, rig.controls->holds());
    REQUIRE(created.ok());
    module = std::move(created).value();
    REQUIRE(rig.router.Add(module.get()).ok());
    rig.controls->AddListener(module.get());
    module->AddJobs(rig.scheduler);
    auto scenario = feeder::LoadScenario(ScenarioPath());
    REQUIRE(scenario.ok());
    auto model = feeder::LoadScenarioFeeder(*scenario);
    REQUIRE(model.ok());
    for (const feeder::Pv& pv : model->pvs) {
      Pv(pv.id, fmt::format("{}.{}", model->buses[pv.bus].name, pv.phase + 1), pv.rated_kw);
      pv_ids.push_back(pv.id);
    }
  }

  void Pv(const std::string& der_id, const std::string& node, double rated_kw,
          double voltage_v = 240) {
    v1::DerBirth b;
    b.set_der_id(der_id);
    b.set_bd_seq(1);
    b.set_der_type(v1::PV);
    b.set_max_discharge_kw(rated_kw);
    b.set_substation_id(kFeeder);
    b.set_feeder_node(node);
    b.set_timestamp_ms(rig.time.NowMs());
    b.set_telemetry_interval_s(60);
    rig.Send(topics::DerBirth(der_id), codec::ToBinary(b));
    Telemetry(der_id, rated_kw, voltage_v);
  }
  void Telemetry(const std::string& der_id, double available_kw, double voltage_v) {
    v1::Telemetry t;
    t.set_der_id(der_id);
    t.set_seq(++seq[der_id]);
    t.set_timestamp_ms(rig.time.NowMs());
    t.set_active_power_kw(available_kw);
    t.set_available_discharge_kw(available_kw);
    t.set_voltage_v(voltage_v);
    t.set_frequency_hz(60);
    rig.Send(topics::DerTelemetry(der_id), codec::ToBinary(t));
  }
  std::vector<v1::CurtailResult> Results() const {
    std::vector<v1::CurtailResult> out;
    for (const auto& p : rig.outbox.On(topics::VderCurtailResult(kFeeder))) {
      v1::CurtailResult r;
      REQUIRE(codec::ParseJson(p.payload, "result", &r).ok());
      out.push_back(r);
    }
    return out;
  }
  size_t RowsIn(const std::string& table) const {
    size_t n = 0;
    for (const auto& row : rig.sink.All<storage::TableRowRecord>()) n += row.table == table;
    return n;
  }

  ModuleRig rig;
  std::unique_ptr<aggregator::CurtailmentModule> module;
  std::vector<std::string> pv_ids;
  std::map<std::string, uint64_t> seq;  // each PV's own counter
};

}  // namespace

TEST_CASE("a curtailment request caps the PVs with generation limits and waits for their answers",
          "[unit][curtailment]") {
  CurtailmentRig c;
  c.rig.Send(topics::VderCurtail(kFeeder), R"({"request_id":"r1","policy":"equal_ratio"})",
             "replies/r1", "x");
  // Every PV is curtailed by one ratio, with a generation limit.
  std::vector<std::pair<std::string, v1::Control>> sent;
  for (const auto& id : c.pv_ids) {
    auto controls = c.rig.ControlsTo(id);
    if (controls.empty()) continue;
    REQUIRE(controls.size() == 1);
    CHECK(controls[0].kind() == v1::CONTROL_KIND_GENERATION_LIMIT);
    REQUIRE(controls[0].intervals_size() == 1);
    CHECK(controls[0].intervals(0).target_kw() >= 0);
    CHECK(c.rig.controls->holds().Held(id, c.rig.time.NowMs()));
    sent.emplace_back(id, controls[0]);
  }
  REQUIRE(sent.size() == c.pv_ids.size());
  CHECK(c.module->active_runs() == 1);
  CHECK(c.Results().empty());  // nothing answered before the PVs do

  // All answer but two: one refuses, one stays silent.
  for (size_t i = 0; i + 1 < sent.size(); ++i) {
    const auto& [id, control] = sent[i];
    c.rig.Answer(id, control.command_id(), i == 0 ? v1::REJECTED : v1::APPLIED,
                 control.intervals(0).target_kw());
  }
  CHECK(c.Results().empty());
  c.rig.Advance(5100);  // the response timeout
  auto results = c.Results();
  REQUIRE(results.size() == 1);
  const v1::CurtailResult& r = results[0];
  CHECK(v1::CurtailOutcome_Name(r.outcome()) == "CURTAIL_PARTIAL");
  CHECK(r.trigger() == "request");
  CHECK(r.v_max_before_pu() > 1.05);
  CHECK(r.v_max_after_pu() <= 1.05);
  CHECK(r.max_ratio() == Approx(r.min_ratio()).margin(1e-6));
  CHECK_THAT(r.reason(), Catch::Contains(fmt::format("{} of {} PVs accepted their cap",
                                                     sent.size() - 2, sent.size())) &&
                             Catch::Contains("'" + sent.front().first + "' REJECTED") &&
                             Catch::Contains("'" + sent.back().first + "' did not answer"));
  REQUIRE(c.rig.outbox.replies.size() == 1);
  CHECK(c.module->active_runs() == 0);
  CHECK(c.RowsIn("curtailment_runs") == 1);
  CHECK(c.RowsIn("curtailment_members") == sent.size());
  CHECK(c.RowsIn("curtailment_voltages") > 200);
}

TEST_CASE("a PV reporting a high voltage starts a run, at most once per interval",
          "[unit][curtailment]") {
  aggregator::CurtailmentOptions o;
  o.vder_id = kFeeder;
  o.trigger_voltage_pu = 1.05;
  o.min_interval_s = 600;
  CurtailmentRig c(o);
  c.rig.Advance(2000);
  CHECK(c.rig.ControlsTo(c.pv_ids[0]).empty());  // 240 V everywhere: no run

  c.Telemetry(c.pv_ids[5], 1.0, 253.5);  // above 1.05 x 240 V
  c.rig.Advance(1000);
  CHECK(c.rig.ControlsTo(c.pv_ids[0]).size() == 1);
  c.rig.Advance(5100);
  auto results = c.Results();
  REQUIRE(results.size() == 1);
  CHECK(results[0].trigger() == "over_voltage");

  // Still high, but within min_interval_s of the last run: none.
  c.Telemetry(c.pv_ids[5], 1.0, 254.0);
  c.rig.Advance(60000);
  CHECK(c.Results().size() == 1);
}

TEST_CASE("a grid status of the feeder's substation above the trigger starts a run",
          "[unit][curtailment]") {
  aggregator::CurtailmentOptions o;
  o.vder_id = kFeeder;
  o.trigger_voltage_pu = 1.05;
  o.min_interval_s = 600;
  CurtailmentRig c(o);
  auto grid = [&](const std::string& substation, double voltage_pu) {
    v1::GridStatus g;
    g.set_substation_id(substation);
    g.set_timestamp_ms(c.rig.time.NowMs());
    g.set_frequency_hz(60);
    g.set_voltage_pu(voltage_pu);
    c.rig.Send(topics::GridStatus(substation), codec::ToJson(g));
  };
  grid(kFeeder, 1.03);      // within the limit
  grid("elsewhere", 1.08);  // another substation
  c.rig.Advance(6000);
  CHECK(c.Results().empty());
  grid(kFeeder, 1.061);
  c.rig.Advance(6000);
  auto results = c.Results();
  REQUIRE(results.size() == 1);
  CHECK(results[0].trigger() == "over_voltage");
  grid(kFeeder, 1.07);  // within min_interval_s: no second run
  c.rig.Advance(6000);
  CHECK(c.Results().size() == 1);
  // Dispatch, which owns grid statuses, still counted each one.
  CHECK(c.rig.Metric("messages_rejected") == 0);
}

TEST_CASE("curtailment requests that cannot run are answered with why", "[unit][curtailment]") {
  CurtailmentRig c;
  c.rig.Send(topics::VderCurtail(kFeeder), R"({"request_id":"t","v_max_pu":1.0})", "replies/t",
             "x");
  auto results = c.Results();
  REQUIRE(results.size() == 1);
  CHECK(v1::CurtailOutcome_Name(results[0].outcome()) == "CURTAIL_INFEASIBLE");
  CHECK_FALSE(results[0].reason().empty());
  CHECK(c.rig.ControlsTo(c.pv_ids[0]).empty());

  c.rig.Send(topics::VderCurtail("nowhere"), R"({"request_id":"n"})", "replies/n", "y");
  results = c.Results();  // on its own vder's topic
  auto nowhere = c.rig.outbox.On(topics::VderCurtailResult("nowhere"));
  REQUIRE(nowhere.size() == 1);
  v1::CurtailResult r;
  REQUIRE(codec::ParseJson(nowhere[0].payload, "result", &r).ok());
  CHECK(v1::CurtailOutcome_Name(r.outcome()) == "CURTAIL_REFUSED");
  CHECK_THAT(r.reason(), Catch::Contains("unknown virtual DER 'nowhere'"));

  c.rig.Send(topics::VderCurtail(kFeeder), R"({"duration_s":100000})", "replies/d", "z");
  REQUIRE(c.rig.outbox.replies.size() == 3);
  REQUIRE(codec::ParseJson(c.rig.outbox.replies.back().payload, "result", &r).ok());
  CHECK(v1::CurtailOutcome_Name(r.outcome()) == "CURTAIL_REFUSED");
  CHECK_THAT(r.reason(), Catch::Contains("duration_s 100000 above 86400"));
}
