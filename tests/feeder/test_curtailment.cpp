// Fair PV curtailment: the LinDistFlow model against the power flow, each
// policy on hand-worked small feeders and on the IEEE 123-bus over-voltage
// scenario, and requests no curtailment can meet.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "feeder/curtailment.h"
#include "feeder/curtailment_plan.h"
#include "feeder/dss_parser.h"
#include "feeder/lindistflow.h"
#include "feeder/power_flow.h"
#include "feeder/scenario.h"
#include "feeder/voltage_plot.h"
#include "tests/feeder/feeder_data.h"

namespace {

using derms::feeder::Curtail;
using derms::feeder::CurtailmentRequest;
using derms::feeder::FairnessPolicy;
using derms::feeder::FeederModel;
using derms::feeder::ParseDssText;

// src --(1 ohm resistive, single phase)-- b, on a 4.16 kV base:
// r = 1 / 4.16^2 = 0.057785 pu.
FeederModel OneLine() {
  auto m = ParseDssText(
      "New object=circuit.t basekv=4.16 bus1=src pu=1.0\n"
      "New Line.l1 phases=1 bus1=src.1 bus2=b.1 r1=1 x1=0 r0=1 x0=0 length=1\n",
      "one.dss");
  REQUIRE(m.ok());
  FeederModel f = *m;
  f.pvs.push_back({"pv-b", f.FindBus("b"), 0, 300, "a"});
  return f;
}

TEST_CASE("one PV on one resistive line is curtailed to the hand-worked ratio", "[curtailment]") {
  // V = 1 + r P / V at the PV bus, so V = 1.03 needs r P = 1.03^2 - 1.03 =
  // 0.0309: P = 0.53474 pu = 178.25 kW of the 300 available, alpha = 0.4058.
  FeederModel f = OneLine();
  CurtailmentRequest req;
  req.policy = FairnessPolicy::kMinTotal;
  req.available_kw = {300};
  req.v_max_pu = 1.03;
  auto r = Curtail(f, req);
  REQUIRE(r.ok());
  REQUIRE(r->feasible);
  double r_pu = 1.0 / (4.16 * 4.16);
  double p_kw = (1.03 * 1.03 - 1.03) / r_pu * 1000.0 / 3.0;
  CHECK(r->cap_kw[0] == Approx(p_kw).margin(0.5));  // the margin_pu keeps it a hair inside
  CHECK(r->cap_kw[0] <= p_kw);
  CHECK(r->max_after.v_pu <= 1.03);
  CHECK(r->max_after.v_pu > 1.0298);
  CHECK(r->max_before.v_pu > 1.04);
}

TEST_CASE("the three-phase LinDistFlow model agrees with the power flow within its known error",
          "[curtailment][lindistflow]") {
  // A 3-phase line with mutual impedances (IEEE linecode 1, 2 kft) and a
  // 200 kW PV on phase 1 only: the mutual terms move phases 2 and 3 too.
  auto m = ParseDssText(
      "New object=circuit.t basekv=4.16 bus1=src pu=1.0\n"
      "New linecode.1 nphases=3 units=kft\n"
      "~ rmatrix=[0.086666667 | 0.029545455 0.088371212 | 0.02907197 0.029924242 0.087405303]\n"
      "~ xmatrix=[0.204166667 | 0.095018939 0.198522727 | 0.072897727 0.080227273 0.201723485]\n"
      "New Line.l1 bus1=src bus2=b linecode=1 length=2 units=kft\n"
      "New Load.ld bus1=b phases=3 conn=wye kv=4.16 kw=300 kvar=150 model=1\n",
      "three.dss");
  REQUIRE(m.ok());
  FeederModel f = *m;
  int b = f.FindBus("b");
  f.pvs.push_back({"pv-b-1", b, 0, 200, "a"});
  for (double pv : {0.0, 200.0}) {
    auto flow = derms::feeder::SolvePowerFlow(f, {pv});
    REQUIRE(flow.ok());
    auto lm = derms::feeder::BuildLinearModel(f, 1.0, 1.0);
    auto v = lm.VoltageSquared(f, {pv});
    for (int p = 0; p < 3; ++p) {
      INFO("pv " << pv << " phase " << p + 1);
      // Losses and the balanced-voltage assumption: well under 0.1 % here.
      CHECK(std::sqrt(v[b][p]) == Approx(flow->Magnitude(b, p)).margin(1e-3));
    }
  }
}

// src -- b1 -- b2 (single phase, 1 + j0.5 ohm each), PVs of 200 kW at b1 and 300 kW
// at b2: curtailing the far PV lowers b2 twice as much per kW.
FeederModel TwoLines(const std::string& area1, const std::string& area2) {
  auto m = ParseDssText(
      "New object=circuit.t basekv=4.16 bus1=src pu=1.0\n"
      "New Line.l1 phases=1 bus1=src.1 bus2=b1.1 r1=1 x1=0.5 r0=1 x0=0.5 length=1\n"
      "New Line.l2 phases=1 bus1=b1.1 bus2=b2.1 r1=1 x1=0.5 r0=1 x0=0.5 length=1\n",
      "two.dss");
  REQUIRE(m.ok());
  FeederModel f = *m;
  f.pvs.push_back({"pv-1", f.FindBus("b1"), 0, 200, area1});
  f.pvs.push_back({"pv-2", f.FindBus("b2"), 0, 300, area2});
  return f;
}

derms::feeder::CurtailmentResult Solve(const FeederModel& f, FairnessPolicy policy) {
  CurtailmentRequest req;
  req.policy = policy;
  req.available_kw = {200, 300};
  req.v_max_pu = 1.04;
  auto r = Curtail(f, req);
  REQUIRE(r.ok());
  INFO(derms::feeder::PolicyName(policy) << ": " << r->reason);
  REQUIRE(r->feasible);
  CHECK(r->max_before.v_pu > 1.04);
  CHECK(r->max_after.v_pu <= 1.04);
  return *r;
}

TEST_CASE("each policy on a two-bus feeder gives its hand-worked shape", "[curtailment]") {
  FeederModel f = TwoLines("a", "a");
  auto equal = Solve(f, FairnessPolicy::kEqualRatio);
  auto ekw = Solve(f, FairnessPolicy::kEqualKw);
  auto least = Solve(f, FairnessPolicy::kMinTotal);
  auto area_same = Solve(f, FairnessPolicy::kPerArea);
  auto area_apart = Solve(TwoLines("a", "b"), FairnessPolicy::kPerArea);

  CHECK(equal.ratio[0] == Approx(equal.ratio[1]));
  CHECK(equal.jain_index == Approx(1.0));
  CHECK(ekw.ratio[0] * 200 == Approx(ekw.ratio[1] * 300));
  // Least total: only the far PV, which relieves b2 most per kW.
  CHECK(least.ratio[0] == Approx(0).margin(1e-9));
  CHECK(least.ratio[1] > 0);
  // Fairness costs kW: least total <= one ratio each area <= one ratio.
  CHECK(least.curtailed_kw <= equal.curtailed_kw);
  CHECK(least.curtailed_kw <= ekw.curtailed_kw);
  // One area: the same as one ratio; an area per PV: the same as least total.
  CHECK(area_same.ratio[0] == Approx(area_same.ratio[1]));
  CHECK(area_same.curtailed_kw == Approx(equal.curtailed_kw).epsilon(1e-6));
  CHECK(area_apart.curtailed_kw == Approx(least.curtailed_kw).epsilon(1e-6));
}

TEST_CASE("a request no curtailment can meet is answered with the reason", "[curtailment]") {
  FeederModel f = TwoLines("a", "a");
  CurtailmentRequest req;
  req.policy = FairnessPolicy::kEqualRatio;
  req.available_kw = {100, 300};
  SECTION("equal kW from each PV cannot exceed the smallest PV") {
    // 100 kW from each leaves 200 kW at b2: still over 1.04 pu.
    req.policy = FairnessPolicy::kEqualKw;
    req.v_max_pu = 1.04;
    auto r = Curtail(f, req);
    REQUIRE(r.ok());
    CHECK_FALSE(r->feasible);
    CHECK(r->reason ==
          "infeasible under equal_kw: no equal kW from every PV (at most the "
          "smallest PV's 100.0 kW) clears the over-voltage");
  }
  SECTION("the source alone is above the limit") {
    req.source_pu = 1.05;
    req.v_max_pu = 1.04;
    auto r = Curtail(f, req);
    REQUIRE(r.ok());
    CHECK_FALSE(r->feasible);
    CHECK(r->reason.find("even with every PV fully curtailed the power flow gives") !=
          std::string::npos);
    CHECK(r->reason.find("above the 1.04 pu limit") != std::string::npos);
  }
  SECTION("an under-voltage curtailment cannot raise") {
    req.available_kw = {0, 0};
    req.v_min_pu = 1.01;
    auto r = Curtail(f, req);
    REQUIRE(r.ok());
    CHECK_FALSE(r->feasible);
    CHECK(r->reason.find("only lowers voltages") != std::string::npos);
  }
  SECTION("bad input is an error naming the field") {
    req.available_kw = {100};
    auto r = Curtail(f, req);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message() == "curtailment: 1 available_kw value(s) for 2 PV(s)");
    req.available_kw = {100, NAN};
    r = Curtail(f, req);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("PV 'pv-2' available_kw nan") != std::string::npos);
  }
}

std::string ScenarioPath() {
  return std::string(DERMS_SOURCE_DIR) + "/feeder/scenarios/ieee123_overvoltage.toml";
}

TEST_CASE("the IEEE 123-bus over-voltage scenario: every policy brings every voltage to 1.05 pu",
          "[curtailment][ieee123]") {
  auto sc = derms::feeder::LoadScenario(ScenarioPath());
  REQUIRE(sc.ok());
  auto model = derms::feeder::LoadScenarioFeeder(*sc);
  REQUIRE(model.ok());
  double rated = 0;
  for (const auto& pv : model->pvs) rated += pv.rated_kw;
  CHECK(rated == Approx(3490));
  double totals[4] = {};
  int i = 0;
  for (FairnessPolicy p : {FairnessPolicy::kEqualRatio, FairnessPolicy::kPerArea,
                           FairnessPolicy::kEqualKw, FairnessPolicy::kMinTotal}) {
    CurtailmentRequest req;
    req.policy = p;
    req.load_mult = sc->load_mult;
    req.source_pu = sc->source_pu;
    for (const auto& pv : model->pvs) req.available_kw.push_back(pv.rated_kw * sc->pv_mult);
    auto r = Curtail(*model, req);
    REQUIRE(r.ok());
    INFO(derms::feeder::PolicyName(p) << ": " << r->reason);
    REQUIRE(r->feasible);
    // Without curtailment the feeder peaks near the DEC's 1.058 pu.
    CHECK(r->max_before.v_pu == Approx(1.058).margin(0.001));
    // Checked by the power flow, independently of the solver's own check.
    derms::feeder::PowerFlowOptions o;
    o.load_mult = sc->load_mult;
    o.source_pu = sc->source_pu;
    auto flow = derms::feeder::SolvePowerFlow(*model, r->cap_kw, o);
    REQUIRE(flow.ok());
    CHECK(flow->Max(*model).v_pu <= 1.05);
    CHECK(flow->Min(*model).v_pu >= 0.95);
    CHECK(r->iterations >= 1);
    // The anchored LinDistFlow model is within about 0.001 pu of the power flow at
    // its first answer; the correction brings it closer.
    REQUIRE(r->model_error_pu.size() == static_cast<size_t>(r->iterations));
    CHECK(r->model_error_pu.front() < 0.003);
    CHECK(r->model_error_pu.back() <= r->model_error_pu.front());
    if (p == FairnessPolicy::kEqualRatio) {
      CHECK(r->max_ratio == Approx(r->min_ratio).margin(1e-9));
      CHECK(r->jain_index == Approx(1.0));
    }
    totals[i++] = r->curtailed_kw;
  }
  for (double t : totals) CHECK(totals[3] <= t + 1e-6);  // least total is least
  CHECK(totals[1] <= totals[0] + 1e-6);                  // areas free <= one ratio
}

TEST_CASE("the 123-bus day under one ratio: curtailed at midday, within limits every step",
          "[curtailment][ieee123]") {
  auto sc = derms::feeder::LoadScenario(ScenarioPath());
  REQUIRE(sc.ok());
  auto model = derms::feeder::LoadScenarioFeeder(*sc);
  REQUIRE(model.ok());
  auto day = derms::feeder::RunDay(*model, *sc, FairnessPolicy::kEqualRatio);
  REQUIRE(day.ok());
  CHECK(day->steps.size() == 96);
  CHECK(day->steps_infeasible == 0);
  CHECK(day->steps_curtailed > 0);
  CHECK(day->curtailed_kwh > 0);
  CHECK(day->max_after_pu <= 1.05);
  CHECK(day->steps[0].curtailed_kw == 0);  // night
}

TEST_CASE("scenario files are checked key by key", "[curtailment][scenario]") {
  auto bad = derms::feeder::LoadScenario("/nonexistent/scenario.toml");
  CHECK_FALSE(bad.ok());
  auto shape =
      derms::feeder::ReadShape(derms::feeder::testing::DataDir() + "/profiles/pvshape.csv");
  REQUIRE(shape.ok());
  CHECK(shape->size() == 96);
}

}  // namespace

namespace {

TEST_CASE("the voltage profile SVG shows both states, the limit and every PV",
          "[curtailment][svg]") {
  FeederModel f = TwoLines("a", "a");
  CurtailmentRequest req;
  req.policy = FairnessPolicy::kEqualRatio;
  req.available_kw = {200, 300};
  req.v_max_pu = 1.04;
  auto r = Curtail(f, req);
  REQUIRE(r.ok());
  std::string svg = derms::feeder::VoltageProfileSvg(f, req, *r, "two <buses>");
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("limit 1.040 pu") != std::string::npos);
  CHECK(svg.find("two &lt;buses&gt;") != std::string::npos);
  size_t circles = 0;
  for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1))
    ++circles;
  // The source's 3 phases and b1, b2 on phase 1, before and after; 3 legend dots.
  CHECK(circles == (3 + 1 + 1) * 2 + 3);
  CHECK(svg.find("pv-2 (bus b2 phase 1): ratio") != std::string::npos);
}

}  // namespace

namespace {

using derms::feeder::PlanCurtailment;
using derms::feeder::PvAgent;

TEST_CASE("a curtailment plan gives each PV agent a cap in W and the reason",
          "[curtailment][plan]") {
  auto model = derms::feeder::testing::LoadIeee123();
  REQUIRE(model.ok());
  // Three agents at the far end of the feeder, where the over-voltage is.
  std::vector<PvAgent> agents = {{"pv-66c", "66", 3, 400, 400, ""},
                                 {"pv-83a", "83", 1, 300, 300, ""},
                                 {"pv-1a", "1", 1, 40, 40, ""}};
  derms::feeder::PlanOptions options;
  options.policy = FairnessPolicy::kMinTotal;
  options.load_mult = 0.25;
  options.source_pu = 1.04;
  FeederModel f = *model;
  f.capacitors.clear();
  auto plan = PlanCurtailment(f, agents, options);
  REQUIRE(plan.ok());
  INFO(plan->reason);
  REQUIRE(plan->feasible);
  CHECK(plan->max_before_pu > 1.05);
  CHECK(plan->max_after_pu <= 1.05);
  REQUIRE(plan->caps.size() == 3);
  CHECK(plan->caps[0].der_id == "pv-66c");
  CHECK(plan->caps[0].cap_w == Approx(plan->caps[0].cap_kw * 1000));
  CHECK(plan->caps[2].ratio == Approx(0).margin(1e-9));  // near the source: not the lever
  CHECK(plan->caps[2].why.find("min_total: not curtailed; bus 1.1") == 0);
  bool someone = false;
  for (const auto& c : plan->caps) someone = someone || c.ratio > 0;
  CHECK(someone);
  CHECK(plan->voltages.size() == 274);
}

TEST_CASE("a curtailment plan refuses agents it cannot place, naming them", "[curtailment][plan]") {
  auto model = derms::feeder::testing::LoadIeee123();
  REQUIRE(model.ok());
  derms::feeder::PlanOptions options;
  auto bad = [&](std::vector<PvAgent> agents) {
    auto plan = PlanCurtailment(*model, agents, options);
    REQUIRE_FALSE(plan.ok());
    return plan.status().message();
  };
  CHECK(bad({{"pv-x", "999", 1, 10, 5, ""}}) ==
        "curtailment: PV 'pv-x': bus '999' is not on feeder 'ieee123'");
  CHECK(bad({{"pv-x", "2", 1, 10, 5, ""}}) ==  // bus 2 is on phase 2 only
        "curtailment: PV 'pv-x': phase 1 is not present at bus '2'");
  CHECK(bad({{"pv-x", "66", 3, 10, 12, ""}}) ==
        "curtailment: PV 'pv-x': available_kw 12 must be in [0, rated_kw 10]");
  CHECK(bad({{"pv-x", "66", 3, 10, 5, ""}, {"pv-x", "66", 1, 10, 5, ""}}) ==
        "curtailment: PV 'pv-x' listed twice");
  CHECK(bad({}) == "curtailment: no PV agents");
}

}  // namespace
