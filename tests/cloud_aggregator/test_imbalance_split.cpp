// Splitting a substation's imbalance across its DERs: hand-worked examples,
// then properties over random fleets (fixed seeds, so every run is the same).
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cloud_aggregator/dispatch/imbalance_split.h"

using derms::dispatch::DerCapability;
using derms::dispatch::SplitImbalance;
using derms::dispatch::SplitResult;

namespace {

constexpr double kTol = 1e-6;

DerCapability Der(const std::string& id, double baseline_kw, double min_kw, double max_kw) {
  return DerCapability{id, baseline_kw, min_kw, max_kw};
}

// A random fleet of 1..200 DERs with min_kw <= baseline_kw <= max_kw. Some DERs
// sit at a limit, some can only export or only import.
std::vector<DerCapability> RandomFleet(std::mt19937& rng) {
  std::uniform_int_distribution<int> size(1, 200);
  std::uniform_real_distribution<double> kw(0.0, 250.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int> shape(0, 5);
  std::vector<DerCapability> fleet;
  int n = size(rng);
  for (int i = 0; i < n; ++i) {
    double min_kw = -kw(rng);
    double max_kw = kw(rng);
    switch (shape(rng)) {
      case 0:
        min_kw = 0;
        break;  // generation only (PV, generator)
      case 1:
        max_kw = 0;
        break;  // load only (EV charger)
      case 2:
        max_kw = min_kw;
        break;  // no flexibility at all
      default:
        break;
    }
    double baseline = min_kw + unit(rng) * (max_kw - min_kw);
    if (shape(rng) == 0) baseline = max_kw;  // at a limit already
    if (shape(rng) == 0) baseline = min_kw;
    fleet.push_back(Der("der-" + std::to_string(i), baseline, min_kw, max_kw));
  }
  return fleet;
}

// Output of every DER after control: its setpoint, or its baseline if it got none.
std::map<std::string, double> Outputs(const std::vector<DerCapability>& fleet,
                                      const SplitResult& r) {
  std::map<std::string, double> out;
  for (const auto& d : fleet) out[d.der_id] = d.baseline_kw;
  for (const auto& s : r.setpoints) out[s.der_id] = s.target_kw;
  return out;
}

double Sum(const std::map<std::string, double>& outputs) {
  double sum = 0;
  for (const auto& [id, kw] : outputs) sum += kw;
  return sum;
}

double Baselines(const std::vector<DerCapability>& fleet) {
  double sum = 0;
  for (const auto& d : fleet) sum += d.baseline_kw;
  return sum;
}

// Headroom of the fleet in the direction of `needed_kw`.
double Headroom(const std::vector<DerCapability>& fleet, double needed_kw) {
  double h = 0;
  for (const auto& d : fleet)
    h += needed_kw > 0 ? d.max_kw - d.baseline_kw : d.baseline_kw - d.min_kw;
  return h;
}

// An imbalance the fleet can cover: baselines plus a fraction of the headroom.
double FeasibleImbalance(const std::vector<DerCapability>& fleet, std::mt19937& rng) {
  std::uniform_real_distribution<double> fraction(-1.0, 1.0);
  double f = fraction(rng);
  return Baselines(fleet) + std::abs(f) * Headroom(fleet, f) * (f >= 0 ? 1 : -1);
}

}  // namespace

TEST_CASE("a deficit is shared in proportion to headroom: 10 and 30 kW batteries, 20 kW",
          "[unit][dispatch]") {
  auto r = SplitImbalance(20.0, {Der("small", 0, -10, 10), Der("big", 0, -30, 30)});
  REQUIRE(r.setpoints.size() == 2);
  CHECK(r.setpoints[0].der_id == "small");
  CHECK(r.setpoints[0].target_kw == Approx(5.0));
  CHECK(r.setpoints[1].der_id == "big");
  CHECK(r.setpoints[1].target_kw == Approx(15.0));
  CHECK(r.uncontrolled_kw == 0.0);
  CHECK(r.needed_kw == Approx(20.0));
  CHECK(r.headroom_kw == Approx(40.0));
  CHECK(r.covered_kw == Approx(20.0));
  CHECK(r.residual_kw == Approx(0.0).margin(kTol));
}

TEST_CASE("a surplus is absorbed in proportion to headroom below the baseline",
          "[unit][dispatch]") {
  // Baselines 2 and -1 (uncontrolled 1 kW); imbalance -11 needs 12 kW less.
  // Headroom down: 2-(-6)=8 and -1-(-17)=16, so 4 and 8 kW less.
  auto r = SplitImbalance(-11.0, {Der("a", 2, -6, 5), Der("b", -1, -17, 3)});
  REQUIRE(r.setpoints.size() == 2);
  CHECK(r.setpoints[0].target_kw == Approx(-2.0));
  CHECK(r.setpoints[1].target_kw == Approx(-9.0));
  CHECK(r.needed_kw == Approx(-12.0));
  CHECK(r.residual_kw == Approx(0.0).margin(kTol));
}

TEST_CASE("only DERs with headroom in the needed direction get a setpoint", "[unit][dispatch]") {
  // pv is at its maximum and the idle EV charger cannot export: only the battery rises.
  auto r = SplitImbalance(12.0, {Der("pv", 4, 0, 4), Der("ev", 0, -7, 0), Der("bat", 0, -5, 5)});
  REQUIRE(r.setpoints.size() == 1);
  CHECK(r.setpoints[0].der_id == "bat");
  CHECK(r.setpoints[0].target_kw == 5.0);  // 12 - 4 = 8 needed, 5 available
  CHECK(r.headroom_kw == Approx(5.0));
  CHECK(r.residual_kw == Approx(3.0));

  // An EV charging flat out cannot absorb more: a surplus lowers only pv.
  auto ev = SplitImbalance(-4.0, {Der("pv", 4, 0, 4), Der("ev", -7, -7, 0)});
  REQUIRE(ev.setpoints.size() == 1);
  CHECK(ev.setpoints[0].der_id == "pv");
  CHECK(ev.setpoints[0].target_kw == Approx(3.0));
}

TEST_CASE("an imbalance met by the baselines sends no setpoints", "[unit][dispatch]") {
  auto r = SplitImbalance(3.0, {Der("a", 1, -5, 5), Der("b", 2, 0, 4)});
  CHECK(r.setpoints.empty());
  CHECK(r.needed_kw == Approx(0.0).margin(kTol));
  CHECK(r.covered_kw == Approx(3.0));
  CHECK(r.residual_kw == Approx(0.0).margin(kTol));
}

TEST_CASE("an empty fleet covers nothing", "[unit][dispatch]") {
  auto r = SplitImbalance(12.5, {});
  CHECK(r.setpoints.empty());
  CHECK(r.covered_kw == 0.0);
  CHECK(r.residual_kw == 12.5);
}

TEST_CASE("a coverable imbalance is met exactly by setpoints plus baselines", "[unit][dispatch]") {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 200; ++trial) {
    auto fleet = RandomFleet(rng);
    double imbalance = FeasibleImbalance(fleet, rng);
    auto r = SplitImbalance(imbalance, fleet);
    INFO("trial " << trial << ", " << fleet.size() << " DERs, imbalance " << imbalance);
    REQUIRE(std::abs(r.needed_kw) <= r.headroom_kw + kTol);
    CHECK(Sum(Outputs(fleet, r)) == Approx(imbalance).margin(kTol));
    CHECK(r.covered_kw == Approx(imbalance).margin(kTol));
    CHECK(r.residual_kw == Approx(0.0).margin(kTol));
    CHECK(r.uncontrolled_kw == Approx(Baselines(fleet)).margin(kTol));
  }
}

TEST_CASE("no target is outside its DER's limits", "[unit][dispatch]") {
  std::mt19937 rng(2);
  std::uniform_real_distribution<double> spread(-3.0, 3.0);
  for (int trial = 0; trial < 200; ++trial) {
    auto fleet = RandomFleet(rng);
    std::map<std::string, DerCapability> by_id;
    for (const auto& d : fleet) by_id[d.der_id] = d;
    // From well inside to far beyond what the fleet can do.
    double imbalance = Baselines(fleet) + spread(rng) * Headroom(fleet, 1.0);
    auto r = SplitImbalance(imbalance, fleet);
    for (const auto& s : r.setpoints) {
      const DerCapability& d = by_id.at(s.der_id);
      INFO("trial " << trial << " " << s.der_id << " target " << s.target_kw << " in [" << d.min_kw
                    << ", " << d.max_kw << "]");
      CHECK(s.target_kw >= d.min_kw);
      CHECK(s.target_kw <= d.max_kw);
    }
  }
}

TEST_CASE("a deficit only raises outputs and a surplus only lowers them", "[unit][dispatch]") {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> spread(-2.0, 2.0);
  for (int trial = 0; trial < 200; ++trial) {
    auto fleet = RandomFleet(rng);
    double imbalance = Baselines(fleet) + spread(rng) * Headroom(fleet, 1.0) + spread(rng);
    auto r = SplitImbalance(imbalance, fleet);
    std::map<std::string, double> baseline;
    for (const auto& d : fleet) baseline[d.der_id] = d.baseline_kw;
    INFO("trial " << trial << " needed " << r.needed_kw);
    for (const auto& s : r.setpoints) {
      if (r.needed_kw > 0) {
        CHECK(s.target_kw >= baseline[s.der_id]);
      } else {
        CHECK(s.target_kw <= baseline[s.der_id]);
      }
    }
  }
}

TEST_CASE("the same input gives the same split", "[unit][dispatch]") {
  std::mt19937 rng(4);
  for (int trial = 0; trial < 200; ++trial) {
    auto fleet = RandomFleet(rng);
    double imbalance = FeasibleImbalance(fleet, rng);
    auto a = SplitImbalance(imbalance, fleet);
    auto b = SplitImbalance(imbalance, fleet);
    REQUIRE(a.setpoints.size() == b.setpoints.size());
    for (size_t i = 0; i < a.setpoints.size(); ++i) {
      CHECK(a.setpoints[i].der_id == b.setpoints[i].der_id);
      CHECK(a.setpoints[i].target_kw == b.setpoints[i].target_kw);
    }
    CHECK(a.residual_kw == b.residual_kw);
  }
}

TEST_CASE("setpoints come in the order of the input", "[unit][dispatch]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    auto fleet = RandomFleet(rng);
    auto r = SplitImbalance(FeasibleImbalance(fleet, rng), fleet);
    size_t next = 0;
    for (const auto& s : r.setpoints) {
      while (next < fleet.size() && fleet[next].der_id != s.der_id) ++next;
      REQUIRE(next < fleet.size());  // found, after the previous one
      ++next;
    }
  }
}

TEST_CASE("an imbalance beyond the fleet drives every DER to its limit and reports the residual",
          "[unit][dispatch]") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> beyond(1.0, 500.0);
  for (int trial = 0; trial < 200; ++trial) {
    auto fleet = RandomFleet(rng);
    bool deficit = trial % 2 == 0;
    double imbalance = deficit ? Baselines(fleet) + Headroom(fleet, 1.0) + beyond(rng)
                               : Baselines(fleet) - Headroom(fleet, -1.0) - beyond(rng);
    auto r = SplitImbalance(imbalance, fleet);
    auto outputs = Outputs(fleet, r);
    INFO("trial " << trial << (deficit ? " deficit" : " surplus"));
    for (const auto& d : fleet) {
      CHECK(outputs[d.der_id] == (deficit ? d.max_kw : d.min_kw));
    }
    CHECK(r.covered_kw == Approx(Sum(outputs)).margin(kTol));
    CHECK(r.residual_kw == Approx(imbalance - r.covered_kw).margin(kTol));
    CHECK(std::abs(r.residual_kw) > 0.9);
    CHECK((r.residual_kw > 0) == deficit);
  }
}

TEST_CASE("a small change in imbalance changes each output by no more than that change",
          "[unit][dispatch]") {
  std::mt19937 rng(6);
  std::uniform_real_distribution<double> delta(-2.0, 2.0);
  for (int trial = 0; trial < 200; ++trial) {
    auto fleet = RandomFleet(rng);
    // Include imbalances near the baselines, where the direction flips.
    double imbalance =
        trial % 4 == 0 ? Baselines(fleet) + delta(rng) / 2 : FeasibleImbalance(fleet, rng);
    double d = delta(rng);
    auto before = Outputs(fleet, SplitImbalance(imbalance, fleet));
    auto after = Outputs(fleet, SplitImbalance(imbalance + d, fleet));
    INFO("trial " << trial << " imbalance " << imbalance << " delta " << d);
    for (const auto& der : fleet) {
      INFO(der.der_id << " " << before[der.der_id] << " -> " << after[der.der_id]);
      CHECK(std::abs(after[der.der_id] - before[der.der_id]) <= std::abs(d) + kTol);
    }
  }
}
