// The dispatch workflow: its stages, what one DER can do (DerMember), the
// allocation down a tree of virtual DERs (hand-worked, then its contract on
// random trees and fleets with fixed seeds) and the closed loop of one run.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cloud_aggregator/dispatch/der_capability.h"
#include "cloud_aggregator/vder/vder_tree.h"
#include "cloud_aggregator/workflow/dispatch_run.h"
#include "cloud_aggregator/workflow/stages.h"
#include "cloud_aggregator/workflow/tree_allocation.h"

using Catch::Matchers::Contains;
using derms::dispatch::Member;
using derms::dispatch::Policy;
using derms::vder::VderDefinition;
using derms::vder::VderTree;
using derms::workflow::ActiveMember;
using derms::workflow::AllocateTree;
using derms::workflow::Capacity;
using derms::workflow::DispatchRun;
using derms::workflow::FrequencyResponse;
using derms::workflow::InForceSetpoint;
using derms::workflow::MemberState;
using derms::workflow::RunResult;
using derms::workflow::TreeAllocation;

namespace {

constexpr double kHourS = 3600;

Member Range(double baseline_kw, double min_kw, double max_kw, double cost = 0) {
  Member m;
  m.baseline_kw = baseline_kw;
  m.min_kw = min_kw;
  m.max_kw = max_kw;
  m.cost = cost;
  return m;
}

ActiveMember Active(const std::string& der_id, int vder, const Member& m,
                    derms::v1::DerType type = derms::v1::BATTERY) {
  ActiveMember a;
  a.der_id = der_id;
  a.vder = vder;
  a.der_type = type;
  a.member = m;
  return a;
}

VderDefinition Vder(const std::string& id, Policy policy, std::vector<std::string> children = {}) {
  VderDefinition d;
  d.id = id;
  d.policy = policy;
  d.children = std::move(children);
  return d;
}

VderTree BuildOk(std::vector<VderDefinition> definitions) {
  auto tree = VderTree::Build(std::move(definitions));
  INFO(tree.status().ToString());
  REQUIRE(tree.ok());
  return std::move(tree).value();
}

double SumOf(const std::vector<double>& x) {
  double sum = 0;
  for (double v : x) sum += v;
  return sum;
}

}  // namespace

// --- Stages --------------------------------------------------------------------

TEST_CASE("total capacity sums the members and counts only batteries' discharge",
          "[unit][workflow]") {
  std::vector<ActiveMember> members = {
      Active("bat-1", 0, Range(2, -10, 10), derms::v1::BATTERY),
      Active("pv-1", 0, Range(5, 0, 8), derms::v1::PV),
      Active("bat-2", 0, Range(0, -5, 4), derms::v1::BATTERY),
      Active("ev-1", 0, Range(-3, -7, 0), derms::v1::EV_CHARGER),
  };
  Capacity c = derms::workflow::TotalCapacity(members);
  CHECK(c.members == 4);
  CHECK(c.baseline_kw == 4);
  CHECK(c.min_kw == -22);
  CHECK(c.max_kw == 22);
  CHECK(c.up_kw == 18);
  CHECK(c.down_kw == 26);
  CHECK(c.battery_max_discharge_kw == 14);  // not the PV's 8

  Capacity none = derms::workflow::TotalCapacity({});
  CHECK(none.members == 0);
  CHECK(none.max_kw == 0);
  CHECK(none.battery_max_discharge_kw == 0);
}

TEST_CASE("net imbalance is load minus supply", "[unit][workflow]") {
  derms::v1::GridStatus grid;
  grid.set_load_kw(120);
  grid.set_supply_kw(100);
  CHECK(derms::workflow::NetImbalanceKw(grid) == 20);  // a deficit: DERs should export
  grid.set_load_kw(80);
  CHECK(derms::workflow::NetImbalanceKw(grid) == -20);
}

TEST_CASE("the frequency term asks for more output when frequency is low, beyond the deadband",
          "[unit][workflow]") {
  FrequencyResponse r;
  r.nominal_hz = 50;
  r.droop_kw_per_hz = 100;
  r.deadband_hz = 0.02;
  using derms::workflow::FrequencyTermKw;
  CHECK(FrequencyTermKw(50.0, r) == 0);
  CHECK(FrequencyTermKw(50.01, r) == 0);
  CHECK(FrequencyTermKw(49.99, r) == 0);
  CHECK(FrequencyTermKw(49.98, r) == Approx(0).margin(1e-9));  // the edge of the band
  // Only the part beyond the band counts: 0.08 Hz at 100 kW/Hz.
  CHECK(FrequencyTermKw(49.9, r) == Approx(8));
  CHECK(FrequencyTermKw(50.1, r) == Approx(-8));
  CHECK(FrequencyTermKw(49.0, r) == Approx(98));

  // No reading, or droop turned off: no response.
  CHECK(FrequencyTermKw(0, r) == 0);
  CHECK(FrequencyTermKw(-1, r) == 0);
  FrequencyResponse off = r;
  off.droop_kw_per_hz = 0;
  CHECK(FrequencyTermKw(49.0, off) == 0);

  // A 60 Hz grid with no deadband.
  FrequencyResponse us;
  us.nominal_hz = 60;
  us.droop_kw_per_hz = 10;
  us.deadband_hz = 0;
  CHECK(FrequencyTermKw(59.5, us) == Approx(5));
  CHECK(FrequencyTermKw(60.25, us) == Approx(-2.5));
}

TEST_CASE("the discharge command is bounded by capacity and the rest is shortfall",
          "[unit][workflow]") {
  Capacity cap;
  cap.min_kw = -20;
  cap.max_kw = 30;
  auto inside = derms::workflow::DischargeCommand(10, cap);
  CHECK(inside.requested_kw == 10);
  CHECK(inside.command_kw == 10);
  CHECK(inside.shortfall_kw == 0);
  auto deficit = derms::workflow::DischargeCommand(50, cap);
  CHECK(deficit.command_kw == 30);
  CHECK(deficit.shortfall_kw == 20);
  auto surplus = derms::workflow::DischargeCommand(-35, cap);
  CHECK(surplus.command_kw == -20);
  CHECK(surplus.shortfall_kw == -15);
  auto nothing = derms::workflow::DischargeCommand(5, Capacity{});
  CHECK(nothing.command_kw == 0);
  CHECK(nothing.shortfall_kw == 5);
}

// --- What one DER can do ---------------------------------------------------------

namespace {

derms::v1::DerBirth Nameplate(double discharge_kw, double charge_kw, double capacity_kwh,
                              derms::v1::DerType type = derms::v1::BATTERY) {
  derms::v1::DerBirth b;
  b.set_der_id("bat-1");
  b.set_der_type(type);
  b.set_max_discharge_kw(discharge_kw);
  b.set_max_charge_kw(charge_kw);
  b.set_energy_capacity_kwh(capacity_kwh);
  return b;
}

derms::v1::Telemetry Now(double available_discharge_kw, double available_charge_kw,
                         double baseline_kw = 0) {
  derms::v1::Telemetry t;
  t.set_der_id("bat-1");
  t.set_available_discharge_kw(available_discharge_kw);
  t.set_available_charge_kw(available_charge_kw);
  t.set_baseline_kw(baseline_kw);
  return t;
}

}  // namespace

TEST_CASE("a battery at 5 percent cannot discharge at full power for an hour", "[unit][workflow]") {
  derms::v1::Telemetry t = Now(50, 50);
  t.set_soc_pct(5);
  // 5 kWh of 100 over an hour is 5 kW; 95 kWh of room would allow 95 kW of
  // charging, so the 50 kW nameplate binds that way.
  Member hour = derms::dispatch::DerMember(Nameplate(50, 50, 100), t, kHourS, 0.7);
  CHECK(hour.max_kw == Approx(5));
  CHECK(hour.min_kw == Approx(-50));
  CHECK(hour.soc_pct == 5);
  CHECK(hour.energy_capacity_kwh == 100);
  CHECK(hour.cost == 0.7);
  // Over a quarter of an hour the same energy sustains four times the power.
  Member quarter = derms::dispatch::DerMember(Nameplate(50, 50, 100), t, kHourS / 4, 0);
  CHECK(quarter.max_kw == Approx(20));
  // Full: it cannot charge at all.
  t.set_soc_pct(100);
  Member full = derms::dispatch::DerMember(Nameplate(50, 50, 100), t, kHourS, 0);
  CHECK(full.min_kw == Approx(0).margin(1e-12));
  CHECK(full.max_kw == Approx(50));
}

TEST_CASE("a DER's range is the tightest of its nameplate and what it says it can do now",
          "[unit][workflow]") {
  // The device says less than its nameplate.
  Member low = derms::dispatch::DerMember(Nameplate(10, 8, 0), Now(3, 4), kHourS, 0);
  CHECK(low.max_kw == 3);
  CHECK(low.min_kw == -4);
  // The device says more than its nameplate.
  Member high = derms::dispatch::DerMember(Nameplate(10, 8, 0), Now(30, 40), kHourS, 0);
  CHECK(high.max_kw == 10);
  CHECK(high.min_kw == -8);
  // Without a state of charge, capacity does not make it storage.
  Member no_soc = derms::dispatch::DerMember(Nameplate(10, 8, 100), Now(10, 8), kHourS, 0);
  CHECK(no_soc.soc_pct < 0);
  CHECK(no_soc.energy_capacity_kwh == 0);
  CHECK(no_soc.max_kw == 10);
  // A PV array cannot import.
  Member pv = derms::dispatch::DerMember(Nameplate(6, 0, 0, derms::v1::PV), Now(4.5, 0), kHourS, 0);
  CHECK(pv.max_kw == 4.5);
  CHECK(pv.min_kw == 0);
}

TEST_CASE("an edge that does not report what it can do now is held to its nameplate",
          "[unit][workflow]") {
  // A third-party edge sending only the contract's telemetry fields: no
  // available_* and no baseline_kw extension.
  derms::v1::Telemetry t;
  t.set_der_id("other-vendor");
  t.set_active_power_kw(-2);
  Member m = derms::dispatch::DerMember(Nameplate(10, 8, 0), t, kHourS, 0);
  CHECK(m.max_kw == 10);
  CHECK(m.min_kw == -8);
  CHECK(m.baseline_kw == -2);  // what it does now
  // Reported as zero is not the same as not reported.
  t.set_available_discharge_kw(0);
  t.set_available_charge_kw(0);
  t.set_baseline_kw(0);
  Member none = derms::dispatch::DerMember(Nameplate(10, 8, 0), t, kHourS, 0);
  CHECK(none.max_kw == 0);
  CHECK(none.min_kw == 0);
  CHECK(none.baseline_kw == 0);
}

TEST_CASE("a DER's baseline is clamped into its range", "[unit][workflow]") {
  CHECK(derms::dispatch::DerMember(Nameplate(10, 8, 0), Now(3, 4, 2), kHourS, 0).baseline_kw == 2);
  CHECK(derms::dispatch::DerMember(Nameplate(10, 8, 0), Now(3, 4, 9), kHourS, 0).baseline_kw == 3);
  CHECK(derms::dispatch::DerMember(Nameplate(10, 8, 0), Now(3, 4, -9), kHourS, 0).baseline_kw ==
        -4);
  // Also into the range the stored energy allows.
  derms::v1::Telemetry t = Now(50, 50, 30);
  t.set_soc_pct(10);
  Member m = derms::dispatch::DerMember(Nameplate(50, 50, 100), t, kHourS, 0);
  CHECK(m.baseline_kw == Approx(10));
  CHECK(m.min_kw <= m.baseline_kw);
}

TEST_CASE("energy available is the stored energy of DERs that can discharge", "[unit][workflow]") {
  derms::v1::Telemetry t = Now(5, 5);
  t.set_soc_pct(40);
  CHECK(derms::dispatch::EnergyAvailableKwh(Nameplate(5, 5, 13.5), t) == Approx(5.4));
  // An EV charger that cannot export holds nothing for the grid.
  CHECK(derms::dispatch::EnergyAvailableKwh(Nameplate(0, 7, 60, derms::v1::EV_CHARGER), t) == 0);
  CHECK(derms::dispatch::EnergyAvailableKwh(Nameplate(5, 5, 0), t) == 0);
  CHECK(derms::dispatch::EnergyAvailableKwh(Nameplate(5, 5, 13.5), Now(5, 5)) == 0);  // no SOC
}

// --- Allocation down the tree ----------------------------------------------------

namespace {

// root (pro rata) claims r-1 directly and has two children: a (fair share,
// three DERs) and b (pro rata, one DER of its own) with b1 (merit order) and
// b2 (soc balance) under it.
struct Example {
  VderTree tree;
  std::vector<ActiveMember> members;
};

Example MakeExample() {
  Example e{BuildOk({Vder("root", Policy::kProRata, {"a", "b"}), Vder("a", Policy::kFairShare),
                     Vder("b", Policy::kProRata, {"b1", "b2"}), Vder("b1", Policy::kMeritOrder),
                     Vder("b2", Policy::kSocBalance)}),
            {}};
  auto at = [&e](const char* id) { return e.tree.Find(id); };
  Member storage1 = Range(0, -20, 20);
  storage1.soc_pct = 50;
  storage1.energy_capacity_kwh = 100;
  Member storage2 = Range(0, -20, 20);
  storage2.soc_pct = 80;
  storage2.energy_capacity_kwh = 100;
  e.members = {
      Active("r-1", at("root"), Range(2, 0, 4)),
      Active("a-1", at("a"), Range(0, 0, 10)),
      Active("a-2", at("a"), Range(0, 0, 30)),
      Active("a-3", at("a"), Range(5, -10, 10)),
      Active("b-1", at("b"), Range(0, 0, 5)),
      Active("b1-1", at("b1"), Range(0, -10, 10, 1)),
      Active("b1-2", at("b1"), Range(0, -10, 10, 2)),
      Active("b2-1", at("b2"), storage1),
      Active("b2-2", at("b2"), storage2),
  };
  return e;
}

// Sum of the members' targets under virtual DER v.
double SubtreeSum(const VderTree& tree, const std::vector<ActiveMember>& members,
                  const TreeAllocation& a, int v) {
  double sum = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    if (tree.IsWithin(members[i].vder, v)) sum += a.target_kw[i];
  }
  return sum;
}

}  // namespace

TEST_CASE("a tree allocation reaches the root target and each virtual DER's share is its DERs'",
          "[unit][workflow]") {
  Example e = MakeExample();
  const int root = e.tree.Find("root");
  TreeAllocation a = AllocateTree(e.tree, root, 40, e.members, kHourS);
  REQUIRE(a.target_kw.size() == e.members.size());
  REQUIRE(a.vder_target_kw.size() == e.tree.size());
  CHECK(a.root.requested_kw == 40);
  CHECK(a.root.allocated_kw == Approx(40));
  CHECK(a.root.shortfall_kw == 0);
  CHECK(SumOf(a.target_kw) == Approx(40));
  for (size_t i = 0; i < e.members.size(); ++i) {
    INFO(e.members[i].der_id << " at " << a.target_kw[i]);
    CHECK(a.target_kw[i] >= e.members[i].member.min_kw);
    CHECK(a.target_kw[i] <= e.members[i].member.max_kw);
  }
  for (size_t v = 0; v < e.tree.size(); ++v) {
    INFO("vder " << e.tree.definition(static_cast<int>(v)).id);
    CHECK(a.vder_target_kw[v] ==
          Approx(SubtreeSum(e.tree, e.members, a, static_cast<int>(v))).margin(1e-9));
  }
  CHECK(a.vder_target_kw[root] == Approx(40));

  // a is fair share: its three DERs run at one fraction of their ranges.
  auto fraction = [&](size_t i) {
    const Member& m = e.members[i].member;
    return (a.target_kw[i] - m.min_kw) / (m.max_kw - m.min_kw);
  };
  CHECK(a.vder_target_kw[e.tree.Find("a")] != Approx(0));
  CHECK(fraction(1) == Approx(fraction(2)));
  CHECK(fraction(1) == Approx(fraction(3)));
  // b1 is merit order: the cheaper DER moves at least as far from baseline.
  CHECK(std::abs(a.target_kw[5]) >= std::abs(a.target_kw[6]));
  // b2 is soc balance: the fuller battery discharges more.
  CHECK(a.target_kw[8] > a.target_kw[7]);
}

TEST_CASE("a tree allocation of a subtree leaves the rest of the tree at zero",
          "[unit][workflow]") {
  Example e = MakeExample();
  const int b = e.tree.Find("b");
  std::vector<ActiveMember> under_b;
  for (const auto& m : e.members) {
    if (e.tree.IsWithin(m.vder, b)) under_b.push_back(m);
  }
  TreeAllocation a = AllocateTree(e.tree, b, 12, under_b, kHourS);
  CHECK(SumOf(a.target_kw) == Approx(12));
  CHECK(a.vder_target_kw[b] == Approx(12));
  CHECK(a.vder_target_kw[e.tree.Find("root")] == 0);
  CHECK(a.vder_target_kw[e.tree.Find("a")] == 0);
  CHECK(a.vder_target_kw[e.tree.Find("b1")] + a.vder_target_kw[e.tree.Find("b2")] +
            a.target_kw[0] ==
        Approx(12));
}

TEST_CASE("a target beyond the tree's range puts every DER at its bound", "[unit][workflow]") {
  Example e = MakeExample();
  const int root = e.tree.Find("root");
  double max_kw = 0, min_kw = 0;
  for (const auto& m : e.members) {
    max_kw += m.member.max_kw;
    min_kw += m.member.min_kw;
  }
  TreeAllocation up = AllocateTree(e.tree, root, 1000, e.members, kHourS);
  TreeAllocation down = AllocateTree(e.tree, root, -1000, e.members, kHourS);
  for (size_t i = 0; i < e.members.size(); ++i) {
    INFO(e.members[i].der_id);
    CHECK(up.target_kw[i] == Approx(e.members[i].member.max_kw));
    CHECK(down.target_kw[i] == Approx(e.members[i].member.min_kw));
  }
  CHECK(up.root.allocated_kw == Approx(max_kw));
  CHECK(up.root.shortfall_kw == Approx(1000 - max_kw));
  CHECK(down.root.shortfall_kw == Approx(-1000 - min_kw));
  CHECK(up.vder_target_kw[e.tree.Find("a")] == Approx(50));
}

namespace {

constexpr Policy kPolicies[] = {Policy::kProRata, Policy::kSocBalance, Policy::kMeritOrder,
                                Policy::kFairShare};

struct RandomDispatch {
  VderTree tree;
  std::vector<ActiveMember> members;
  double duration_s = kHourS;
};

// A root with 2-4 children, each with 0-3 grandchildren, every virtual DER
// with a random policy, and 1-80 DERs of varied shapes claimed by any of them
// (so inner virtual DERs have DERs of their own too, and some none at all).
RandomDispatch MakeRandomDispatch(std::mt19937& rng) {
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto policy = [&] { return kPolicies[uniform(0, 3)]; };
  std::vector<VderDefinition> defs = {Vder("root", policy())};
  const int nc = uniform(2, 4);
  for (int i = 0; i < nc; ++i) {
    const std::string child = "c" + std::to_string(i);
    defs[0].children.push_back(child);
    VderDefinition c = Vder(child, policy());
    const int ng = uniform(0, 3);
    for (int j = 0; j < ng; ++j) {
      c.children.push_back(child + "-g" + std::to_string(j));
      defs.push_back(Vder(c.children.back(), policy()));
    }
    defs.push_back(c);
  }
  RandomDispatch r{BuildOk(defs), {}, 60.0 * uniform(1, 240)};
  const int n = uniform(1, 80);
  const double hours = r.duration_s / kHourS;
  for (int i = 0; i < n; ++i) {
    Member m;
    m.min_kw = -100 * unit(rng);
    m.max_kw = 100 * unit(rng);
    switch (uniform(0, 5)) {
      case 0:
        m.min_kw = 0;  // generation only
        break;
      case 1:
        m.max_kw = 0;  // load only
        break;
      case 2:
        m.max_kw = m.min_kw;  // no range
        break;
      default:
        break;
    }
    if (uniform(0, 2) == 0) {
      m.soc_pct = 100 * unit(rng);
      m.energy_capacity_kwh = 1 + 200 * unit(rng);
      const double full_kw = m.energy_capacity_kwh / hours / 100;
      m.max_kw = std::min(m.max_kw, m.soc_pct * full_kw);
      m.min_kw = std::max(m.min_kw, -(100 - m.soc_pct) * full_kw);
      if (m.min_kw > m.max_kw) m.min_kw = m.max_kw;
    }
    m.baseline_kw = m.min_kw + unit(rng) * (m.max_kw - m.min_kw);
    m.cost = uniform(0, 3);
    const int vder = uniform(0, static_cast<int>(r.tree.size()) - 1);
    r.members.push_back(Active("der-" + std::to_string(i), vder, m));
  }
  return r;
}

// The first breach of AllocateTree's contract, or "".
std::string TreeBreach(const RandomDispatch& r, double target_kw, const TreeAllocation& a) {
  std::ostringstream out;
  out.precision(17);
  double min_kw = 0, max_kw = 0, scale_kw = 1;
  for (const auto& m : r.members) {
    min_kw += m.member.min_kw;
    max_kw += m.member.max_kw;
    scale_kw += std::abs(m.member.min_kw) + std::abs(m.member.max_kw);
  }
  const double tol = 1e-9 * scale_kw;
  for (size_t i = 0; i < r.members.size(); ++i) {
    const Member& m = r.members[i].member;
    if (!(m.min_kw <= a.target_kw[i] && a.target_kw[i] <= m.max_kw)) {
      out << "der " << i << " at " << a.target_kw[i] << " outside [" << m.min_kw << ", " << m.max_kw
          << "]";
      return out.str();
    }
  }
  const double sum = SumOf(a.target_kw);
  if (std::abs(sum - a.root.allocated_kw) > tol) {
    out << "DERs sum to " << sum << ", root allocated " << a.root.allocated_kw;
    return out.str();
  }
  if (min_kw <= target_kw && target_kw <= max_kw) {
    if (std::abs(sum - target_kw) > 1e-6 * scale_kw) {
      out << "feasible target " << target_kw << " but DERs sum to " << sum;
      return out.str();
    }
  } else {
    const bool up = target_kw > max_kw;
    for (size_t i = 0; i < r.members.size(); ++i) {
      const Member& m = r.members[i].member;
      if (std::abs(a.target_kw[i] - (up ? m.max_kw : m.min_kw)) > tol) {
        out << "infeasible target " << target_kw << " but der " << i << " at " << a.target_kw[i];
        return out.str();
      }
    }
  }
  for (size_t v = 0; v < r.tree.size(); ++v) {
    const double under = SubtreeSum(r.tree, r.members, a, static_cast<int>(v));
    if (std::abs(a.vder_target_kw[v] - under) > tol) {
      out << "vder " << r.tree.definition(static_cast<int>(v)).id << " target "
          << a.vder_target_kw[v] << " but its DERs sum to " << under;
      return out.str();
    }
  }
  return "";
}

}  // namespace

TEST_CASE("tree allocations keep DERs in range and meet feasible targets on random trees",
          "[unit][workflow]") {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    RandomDispatch r = MakeRandomDispatch(rng);
    const int root = r.tree.Find("root");
    double min_kw = 0, max_kw = 0, baseline_kw = 0;
    for (const auto& m : r.members) {
      min_kw += m.member.min_kw;
      max_kw += m.member.max_kw;
      baseline_kw += m.member.baseline_kw;
    }
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (double target :
         {min_kw - 10, min_kw, max_kw, max_kw + 10, baseline_kw,
          min_kw + unit(rng) * (max_kw - min_kw), min_kw + unit(rng) * (max_kw - min_kw)}) {
      INFO("target " << target << " in [" << min_kw << ", " << max_kw << "]");
      TreeAllocation a = AllocateTree(r.tree, root, target, r.members, r.duration_s);
      REQUIRE(a.target_kw.size() == r.members.size());
      REQUIRE(TreeBreach(r, target, a) == "");
    }
  }
}

// --- One dispatch run, closed loop ------------------------------------------------

namespace {

// root (pro rata) claims a fixed PV (2 kW, no range) and has two children:
// x with bat-0 and bat-1 (-10..10 kW each), y with bat-2 (-20..20 kW). Every
// baseline but the PV's is 0, so 20 kW asks 18 kW of the batteries: 9 from
// x (4.5 each) and 9 from y.
struct RunFixture {
  VderTree tree = BuildOk({Vder("root", Policy::kProRata, {"x", "y"}), Vder("x", Policy::kProRata),
                           Vder("y", Policy::kProRata)});
  std::vector<ActiveMember> members = {
      Active("bat-0", tree.Find("x"), Range(0, -10, 10)),
      Active("bat-1", tree.Find("x"), Range(0, -10, 10)),
      Active("bat-2", tree.Find("y"), Range(0, -20, 20)),
      Active("pv-3", tree.Find("root"), Range(2, 2, 2), derms::v1::PV),
  };

  DispatchRun Run(double target_kw, int max_rounds = 3) {
    return DispatchRun(tree, tree.Find("root"), target_kw, members, kHourS, max_rounds);
  }
};

// Begins a run with no setpoints already in force.
std::vector<size_t> Begin(DispatchRun& run) { return run.Begin({}, 0); }

std::string CommandId(const DispatchRun& run, size_t i) {
  return "cmd-r" + std::to_string(run.round()) + "-" + std::to_string(i);
}

void SendAll(DispatchRun& run, const std::vector<size_t>& send) {
  for (size_t i : send) run.Sent(i, CommandId(run, i));
}

// Answers every member still waiting with APPLIED.
void ApplyAll(DispatchRun& run) {
  for (size_t i = 0; i < run.members().size(); ++i) {
    if (run.members()[i].state == MemberState::kSent) {
      run.OnResponse(i, run.members()[i].command_id, derms::v1::APPLIED, 0, "");
    }
  }
}

double Achieved(const DispatchRun& run) {
  double sum = 0;
  for (const auto& m : run.members()) sum += m.applied_kw;
  return sum;
}

}  // namespace

TEST_CASE("a dispatch run sends controls only to members moved off their baseline",
          "[unit][workflow]") {
  RunFixture f;
  DispatchRun run = f.Run(20);
  std::vector<size_t> send = Begin(run);
  CHECK(send == std::vector<size_t>{0, 1, 2});  // not the PV: nothing to change
  CHECK(run.members()[0].target_kw == Approx(4.5));
  CHECK(run.members()[2].target_kw == Approx(9));
  CHECK(run.members()[0].state == MemberState::kToSend);
  CHECK(run.members()[3].state == MemberState::kUncontrolled);
  CHECK(run.Waiting());

  // At the baselines already: nothing to send, nothing to wait for.
  DispatchRun idle = f.Run(2);
  CHECK(Begin(idle).empty());
  CHECK_FALSE(idle.Waiting());
  CHECK(idle.Correct().empty());
  RunResult r = idle.Result();
  CHECK(r.achieved_kw == Approx(2));
  CHECK(r.members_dispatched == 0);
  CHECK(r.reason.empty());
}

TEST_CASE("a dispatch run whose controls are all applied achieves its target in one round",
          "[unit][workflow]") {
  RunFixture f;
  DispatchRun run = f.Run(20);
  SendAll(run, Begin(run));
  CHECK(run.Waiting());
  run.OnResponse(0, CommandId(run, 0), derms::v1::APPLIED, 4.5, "");
  // RECEIVED: accepted to start later, as good as applied for this run.
  run.OnResponse(1, CommandId(run, 1), derms::v1::RECEIVED, 0, "");
  CHECK(run.Waiting());
  run.OnResponse(2, CommandId(run, 2), derms::v1::APPLIED, 9, "");
  CHECK_FALSE(run.Waiting());
  CHECK(run.Correct().empty());
  RunResult r = run.Result();
  CHECK(r.target_kw == 20);
  CHECK(r.planned_kw == Approx(20));
  CHECK(r.achieved_kw == Approx(20));
  CHECK(r.shortfall_kw == Approx(0).margin(1e-9));
  CHECK(r.applied == 3);
  CHECK(r.members_dispatched == 3);
  CHECK(r.failed == 0);
  CHECK(r.rounds == 1);
  CHECK(r.reason.empty());
}

TEST_CASE("a rejected control moves its share to the other members in the next round",
          "[unit][workflow]") {
  RunFixture f;
  DispatchRun run = f.Run(20);
  SendAll(run, Begin(run));
  const double first_1 = run.members()[1].target_kw, first_2 = run.members()[2].target_kw;
  run.OnResponse(0, CommandId(run, 0), derms::v1::REJECTED, 0, "battery in maintenance");
  ApplyAll(run);
  CHECK_FALSE(run.Waiting());

  std::vector<size_t> more = run.Correct();
  CHECK(more == std::vector<size_t>{1, 2});
  CHECK(run.round() == 2);
  CHECK(run.members()[0].state == MemberState::kFailed);
  CHECK(run.members()[0].applied_kw == 0);  // assumed at its baseline
  CHECK(run.members()[1].target_kw > first_1);
  CHECK(run.members()[2].target_kw > first_2);
  CHECK(run.members()[1].target_kw + run.members()[2].target_kw == Approx(18));

  SendAll(run, more);
  ApplyAll(run);
  CHECK(run.Correct().empty());
  RunResult r = run.Result();
  CHECK(r.achieved_kw == Approx(20));
  CHECK(Achieved(run) == Approx(20));
  CHECK(r.failed == 1);
  CHECK(r.applied == 2);
  CHECK(r.members_dispatched == 2);
  CHECK(r.rounds == 2);
  CHECK(r.planned_kw == Approx(20));
  CHECK_THAT(r.reason, Contains("1 rejected"));
  CHECK_THAT(r.reason, Contains("bat-0"));
  CHECK_THAT(r.reason, Contains("battery in maintenance"));
}

TEST_CASE("a rejected control with no capacity left elsewhere ends short and says so",
          "[unit][workflow]") {
  RunFixture f;
  DispatchRun run = f.Run(40);  // 38 kW of the batteries' 40
  SendAll(run, Begin(run));
  run.OnResponse(2, CommandId(run, 2), derms::v1::REJECTED, 0, "offline inverter");
  ApplyAll(run);
  std::vector<size_t> more = run.Correct();
  CHECK(more == std::vector<size_t>{0, 1});
  CHECK(run.members()[0].target_kw == Approx(10));  // all x has
  CHECK(run.members()[1].target_kw == Approx(10));
  SendAll(run, more);
  ApplyAll(run);
  CHECK(run.Correct().empty());
  RunResult r = run.Result();
  CHECK(r.achieved_kw == Approx(22));
  CHECK(r.shortfall_kw == Approx(18));
  CHECK_THAT(r.reason, Contains("bat-2"));
  CHECK_THAT(r.reason, Contains("achieved 22.0 of 40.0 kW"));
}

TEST_CASE("a clamped control is pinned where it stopped and the others make up the rest",
          "[unit][workflow]") {
  RunFixture f;
  DispatchRun run = f.Run(20);
  SendAll(run, Begin(run));
  run.OnResponse(2, CommandId(run, 2), derms::v1::CLAMPED, 3, "export limit 3 kW");
  ApplyAll(run);
  std::vector<size_t> more = run.Correct();
  CHECK(more == std::vector<size_t>{0, 1});
  CHECK(run.members()[2].state == MemberState::kClamped);
  CHECK(run.members()[2].applied_kw == 3);
  CHECK(run.members()[0].target_kw == Approx(7.5));
  CHECK(run.members()[1].target_kw == Approx(7.5));
  SendAll(run, more);
  ApplyAll(run);
  CHECK(run.Correct().empty());
  RunResult r = run.Result();
  CHECK(r.achieved_kw == Approx(20));
  CHECK(r.clamped == 1);
  CHECK(r.applied == 2);
  CHECK(r.members_dispatched == 3);  // the clamped one still follows a setpoint
  CHECK_THAT(r.reason, Contains("1 clamped"));
}

TEST_CASE("a member that does not answer by the deadline is assumed at its baseline",
          "[unit][workflow]") {
  RunFixture f;
  DispatchRun run = f.Run(20);
  SendAll(run, Begin(run));
  run.OnResponse(0, CommandId(run, 0), derms::v1::APPLIED, 0, "");
  run.OnResponse(2, CommandId(run, 2), derms::v1::APPLIED, 0, "");
  CHECK(run.Waiting());  // bat-1 is silent
  const std::string silent_command = CommandId(run, 1);
  std::vector<size_t> more = run.Correct();
  CHECK(run.members()[1].state == MemberState::kNoAnswer);
  CHECK(run.members()[1].applied_kw == 0);
  CHECK(more == std::vector<size_t>{0, 2});
  SendAll(run, more);
  ApplyAll(run);
  // Its late answer changes nothing: its share has gone to the others.
  run.OnResponse(1, silent_command, derms::v1::APPLIED, 4.5, "");
  CHECK(run.members()[1].state == MemberState::kNoAnswer);
  CHECK(run.Correct().empty());
  RunResult r = run.Result();
  CHECK(r.no_answer == 1);
  CHECK(r.achieved_kw == Approx(20));
  CHECK_THAT(r.reason, Contains("1 did not answer"));
  CHECK_THAT(r.reason, Contains("bat-1"));
}

TEST_CASE("a dispatch run stops correcting after max_rounds", "[unit][workflow]") {
  // Round 1: bat-0 rejects. Round 2 asks bat-1 for 6 and bat-2 for 12; bat-1
  // rejects too, and so keeps following its round-1 setpoint of 4.5 kW (an
  // edge keeps its control when it rejects another). With two rounds
  // allowed the run ends at 18.5 kW; with three, bat-2 is asked for the rest.
  for (int max_rounds : {2, 3}) {
    INFO("max_rounds " << max_rounds);
    RunFixture f;
    DispatchRun run = f.Run(20, max_rounds);
    SendAll(run, Begin(run));
    run.OnResponse(0, CommandId(run, 0), derms::v1::REJECTED, 0, "no");
    ApplyAll(run);
    std::vector<size_t> more = run.Correct();
    REQUIRE(more == std::vector<size_t>{1, 2});
    CHECK(run.members()[1].target_kw == Approx(6));
    CHECK(run.members()[2].target_kw == Approx(12));
    SendAll(run, more);
    run.OnResponse(1, CommandId(run, 1), derms::v1::REJECTED, 0, "no");
    ApplyAll(run);
    more = run.Correct();
    if (max_rounds == 2) {
      CHECK(more.empty());
      CHECK(run.round() == 2);
      RunResult r = run.Result();
      CHECK(r.rounds == 2);
      CHECK(r.failed == 2);
      CHECK(r.achieved_kw == Approx(18.5));
      CHECK(r.shortfall_kw == Approx(1.5));
    } else {
      CHECK(more == std::vector<size_t>{2});
      CHECK(run.members()[2].target_kw == Approx(13.5));
      SendAll(run, more);
      ApplyAll(run);
      CHECK(run.Correct().empty());
      CHECK(run.Result().achieved_kw == Approx(20));
      CHECK(run.Result().rounds == 3);
    }
  }

  // One round: a failure is reported, not corrected.
  RunFixture f;
  DispatchRun once = f.Run(20, 1);
  SendAll(once, Begin(once));
  once.OnResponse(0, CommandId(once, 0), derms::v1::REJECTED, 0, "no");
  ApplyAll(once);
  CHECK(once.Correct().empty());
  CHECK(once.Result().achieved_kw == Approx(15.5));
}

TEST_CASE("answers to an older control of the run are ignored", "[unit][workflow]") {
  RunFixture f;
  DispatchRun run = f.Run(20);
  SendAll(run, Begin(run));
  const std::string first_1 = CommandId(run, 1);
  run.OnResponse(0, CommandId(run, 0), derms::v1::REJECTED, 0, "no");
  ApplyAll(run);
  SendAll(run, run.Correct());
  REQUIRE(run.members()[1].state == MemberState::kSent);
  REQUIRE(run.members()[1].command_id != first_1);

  // The first control's SUPERSEDED arrives after the second was sent.
  run.OnResponse(1, first_1, derms::v1::SUPERSEDED, 0, "replaced");
  CHECK(run.members()[1].state == MemberState::kSent);
  CHECK(run.Waiting());
  // A stale APPLIED for the member that failed does not revive it.
  run.OnResponse(0, "cmd-r1-0", derms::v1::APPLIED, 4.5, "");
  CHECK(run.members()[0].state == MemberState::kFailed);
  // Neither an unspecified status nor COMPLETED is an outcome.
  run.OnResponse(1, run.members()[1].command_id, derms::v1::COMPLETED, 0, "");
  run.OnResponse(1, run.members()[1].command_id, derms::v1::CONTROL_STATUS_UNSPECIFIED, 0, "");
  CHECK(run.members()[1].state == MemberState::kSent);

  ApplyAll(run);
  CHECK(run.Correct().empty());
  CHECK(run.Result().achieved_kw == Approx(20));
  CHECK(run.Result().failed == 1);
}

TEST_CASE("a member whose setpoint in force is close to its new target keeps it as applied",
          "[unit][workflow]") {
  RunFixture f;
  DispatchRun run = f.Run(20);
  // bat-1 follows 4.3 kW from an earlier run; this run would ask 4.5 kW.
  std::vector<InForceSetpoint> in_force(f.members.size());
  in_force[1] = {4.3, "cmd-earlier-run", true};
  in_force[2] = {15, "cmd-far-off", true};  // 9 kW is wanted: too far to keep
  std::vector<size_t> send = run.Begin(in_force, 0.5);
  CHECK(send == std::vector<size_t>{0, 2});
  const auto& held = run.members()[1];
  CHECK(held.held);
  CHECK(held.state == MemberState::kApplied);
  CHECK(held.target_kw == 4.3);
  CHECK(held.command_id == "cmd-earlier-run");
  CHECK_FALSE(run.members()[2].held);
  // The others make up the 0.2 kW it leaves, so the plan is still exact.
  CHECK(run.members()[0].target_kw + run.members()[2].target_kw == Approx(13.7));
  CHECK(run.Result().planned_kw == Approx(20));

  SendAll(run, send);
  ApplyAll(run);
  CHECK_FALSE(run.Waiting());
  CHECK(run.Correct().empty());
  RunResult r = run.Result();
  CHECK(r.applied == 3);
  CHECK(r.members_dispatched == 3);
  CHECK(r.achieved_kw == Approx(20));
  CHECK(r.reason.empty());
}

TEST_CASE("a held setpoint stays put while a failure's share goes to the others",
          "[unit][workflow]") {
  RunFixture f;
  DispatchRun run = f.Run(20);
  std::vector<InForceSetpoint> in_force(f.members.size());
  in_force[1] = {4.3, "cmd-earlier-run", true};
  SendAll(run, run.Begin(in_force, 0.5));
  run.OnResponse(0, CommandId(run, 0), derms::v1::REJECTED, 0, "no");
  ApplyAll(run);
  std::vector<size_t> more = run.Correct();
  CHECK(more == std::vector<size_t>{2});
  CHECK(run.members()[1].target_kw == 4.3);
  CHECK(run.members()[2].target_kw == Approx(13.7));
  SendAll(run, more);
  ApplyAll(run);
  CHECK(run.Correct().empty());
  CHECK(run.Result().achieved_kw == Approx(20));
}

TEST_CASE("no setpoint in force, or no deadband, keeps nothing", "[unit][workflow]") {
  RunFixture f;
  std::vector<InForceSetpoint> none(f.members.size());  // every kw NaN
  DispatchRun a = f.Run(20);
  CHECK(a.Begin(none, 0.5) == std::vector<size_t>{0, 1, 2});
  std::vector<InForceSetpoint> exact(f.members.size());
  exact[1] = {4.5, "cmd-earlier-run"};
  DispatchRun b = f.Run(20);
  CHECK(b.Begin(exact, 0) == std::vector<size_t>{0, 1, 2});
  CHECK_FALSE(b.members()[1].held);
}

TEST_CASE("a member that refuses keeps doing what it did before, not its baseline",
          "[unit][workflow]") {
  RunFixture f;
  // bat-1 follows 3 kW from an earlier run, too little time left to keep it.
  std::vector<InForceSetpoint> in_force(f.members.size());
  in_force[1] = {3, "cmd-earlier-run", false};
  DispatchRun run = f.Run(20);
  auto sent = run.Begin(in_force, 0.5);
  CHECK_FALSE(run.members()[1].held);
  REQUIRE(sent == std::vector<size_t>{0, 1, 2});
  SendAll(run, sent);
  run.OnResponse(1, CommandId(run, 1), derms::v1::REJECTED, 0, "locked");
  ApplyAll(run);
  CHECK(run.members()[1].applied_kw == 3);
  // The correction counts its 3 kW (and pv-3 its fixed 2), so the batteries
  // make up only the rest.
  auto more = run.Correct();
  SendAll(run, more);
  ApplyAll(run);
  CHECK(run.Correct().empty());
  CHECK(run.Result().achieved_kw == Approx(20));
  CHECK(run.members()[0].target_kw + run.members()[2].target_kw == Approx(15));
}
