// Allocating a virtual DER's target across its members: hand-worked examples
// for each policy, then the header's contract checked on random fleets for
// every policy (fixed seeds, so every run is the same).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cloud_aggregator/dispatch/allocation.h"

using derms::dispatch::Allocate;
using derms::dispatch::Allocation;
using derms::dispatch::Member;
using derms::dispatch::ParsePolicy;
using derms::dispatch::Policy;
using derms::dispatch::PolicyName;

namespace {

constexpr double kHourS = 3600;
constexpr double kTol = 1e-9;
constexpr Policy kPolicies[] = {Policy::kProRata, Policy::kSocBalance, Policy::kMeritOrder,
                                Policy::kFairShare};

Member Flex(double baseline_kw, double min_kw, double max_kw, double cost = 0) {
  Member m;
  m.baseline_kw = baseline_kw;
  m.min_kw = min_kw;
  m.max_kw = max_kw;
  m.cost = cost;
  return m;
}

Member Battery(double soc_pct, double capacity_kwh, double min_kw, double max_kw) {
  Member m = Flex(0, min_kw, max_kw);
  m.soc_pct = soc_pct;
  m.energy_capacity_kwh = capacity_kwh;
  return m;
}

bool IsStorage(const Member& m) { return m.energy_capacity_kwh > 0 && m.soc_pct >= 0; }

// Projected SOC at the end of the duration for output `kw`.
double ProjectedSoc(const Member& m, double kw, double duration_s) {
  return m.soc_pct - 100.0 * kw * (duration_s / kHourS) / m.energy_capacity_kwh;
}

// In index order, as the allocation sums.
double Sum(const std::vector<double>& x) {
  double sum = 0;
  for (double kw : x) sum += kw;
  return sum;
}

struct Totals {
  double min_kw = 0;
  double max_kw = 0;
  double baseline_kw = 0;
  double scale_kw = 1;  // 1 + sum of |limits|: the size of the fleet's numbers
};

Totals TotalsOf(const std::vector<Member>& members) {
  Totals t;
  for (const Member& m : members) {
    t.min_kw += m.min_kw;
    t.max_kw += m.max_kw;
    t.baseline_kw += m.baseline_kw;
    t.scale_kw += std::abs(m.min_kw) + std::abs(m.max_kw);
  }
  return t;
}

bool Feasible(const std::vector<Member>& members, double target_kw) {
  Totals t = TotalsOf(members);
  return t.min_kw <= target_kw && target_kw <= t.max_kw;
}

// How far a member may move the wrong way through rounding alone.
double MoveTol(const Member& m) { return kTol * (1 + std::abs(m.min_kw) + std::abs(m.max_kw)); }

struct Fleet {
  std::vector<Member> members;
  double duration_s = kHourS;
};

// A random fleet of 1..300 members of varied shapes: generation only, load
// only, no range at all, baselines at a bound, storage with random SOC and
// capacity (half of them with limits the energy can sustain, as the capability
// model produces), members that look like storage but are not, and costs drawn
// from a few values (so they tie) or from a continuum.
Fleet RandomFleet(std::mt19937& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int> die(0, 9);
  const double durations_s[] = {60, 900, 3600, 4 * 3600};
  Fleet fleet;
  fleet.duration_s = durations_s[std::uniform_int_distribution<int>(0, 3)(rng)];
  const double hours = fleet.duration_s / kHourS;
  const int n = die(rng) < 2 ? std::uniform_int_distribution<int>(1, 5)(rng)
                             : std::uniform_int_distribution<int>(1, 300)(rng);
  const bool tied_costs = die(rng) < 5;
  for (int i = 0; i < n; ++i) {
    Member m;
    m.min_kw = -250 * unit(rng);
    m.max_kw = 250 * unit(rng);
    switch (die(rng)) {
      case 0:
        m.min_kw = 0;  // generation only (PV, generator)
        break;
      case 1:
        m.max_kw = 0;  // load only (EV charger)
        break;
      case 2:
        m.max_kw = m.min_kw;  // no flexibility at all
        break;
      case 3:
        m.min_kw = 20 * unit(rng);  // must run (a generator at minimum load)
        m.max_kw = m.min_kw + 100 * unit(rng);
        break;
      default:
        break;
    }
    const int storage = die(rng);
    if (storage < 4) {
      m.soc_pct = 100 * unit(rng);
      if (die(rng) == 0) m.soc_pct = die(rng) < 5 ? 0 : 100;
      m.energy_capacity_kwh = 1 + 999 * unit(rng);
      if (storage < 2) {
        // Limits the stored energy can sustain over the duration.
        const double full_kw = m.energy_capacity_kwh / hours / 100;
        m.max_kw = std::min(m.max_kw, m.soc_pct * full_kw);
        m.min_kw = std::max(m.min_kw, -(100 - m.soc_pct) * full_kw);
        if (m.min_kw > m.max_kw) m.min_kw = m.max_kw;
      }
    } else if (storage == 4) {
      m.soc_pct = 100 * unit(rng);  // SOC reported but no capacity: not storage
    } else if (storage == 5) {
      m.energy_capacity_kwh = 100;  // capacity but no SOC: not storage
    }
    m.baseline_kw = m.min_kw + unit(rng) * (m.max_kw - m.min_kw);
    if (die(rng) == 0) m.baseline_kw = m.max_kw;
    if (die(rng) == 0) m.baseline_kw = m.min_kw;
    m.cost = tied_costs ? std::uniform_int_distribution<int>(0, 3)(rng) : 100 * unit(rng) - 20;
    fleet.members.push_back(m);
  }
  return fleet;
}

// Targets that probe the whole range: beyond it both ways, exactly at its
// ends, at the baselines, and inside it.
std::vector<double> ProbeTargets(const std::vector<Member>& members, std::mt19937& rng) {
  Totals t = TotalsOf(members);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<double> targets = {t.min_kw - 1 - 100 * unit(rng),
                                 t.min_kw,
                                 t.max_kw,
                                 t.max_kw + 1 + 100 * unit(rng),
                                 t.baseline_kw,
                                 t.min_kw + 1e-7 * (t.max_kw - t.min_kw),
                                 t.max_kw - 1e-7 * (t.max_kw - t.min_kw)};
  for (int k = 0; k < 5; ++k) targets.push_back(t.min_kw + unit(rng) * (t.max_kw - t.min_kw));
  return targets;
}

double FeasibleTarget(const std::vector<Member>& members, std::mt19937& rng) {
  Totals t = TotalsOf(members);
  return t.min_kw + std::uniform_real_distribution<double>(0.0, 1.0)(rng) * (t.max_kw - t.min_kw);
}

// The header's contract for one allocation, as a description of the first
// breach ("" when there is none), so a failure names the member and numbers.
std::string ContractBreach(const std::vector<Member>& members, double target_kw,
                           const Allocation& a) {
  std::ostringstream out;
  out.precision(17);
  if (a.target_kw.size() != members.size()) {
    out << a.target_kw.size() << " targets for " << members.size() << " members";
    return out.str();
  }
  if (a.requested_kw != target_kw) out << "requested " << a.requested_kw << " ";
  if (a.allocated_kw != Sum(a.target_kw)) out << "allocated " << a.allocated_kw << " != sum ";
  for (std::size_t i = 0; i < members.size(); ++i) {
    const Member& m = members[i];
    const double x = a.target_kw[i];
    if (!(m.min_kw <= x && x <= m.max_kw)) {
      out << "member " << i << " at " << x << " outside [" << m.min_kw << ", " << m.max_kw << "] ";
      break;
    }
  }
  Totals t = TotalsOf(members);
  if (Feasible(members, target_kw)) {
    const double sum = Sum(a.target_kw);
    if (std::abs(sum - target_kw) > 1e-6 * t.scale_kw) out << "sum " << sum << " ";
    if (a.shortfall_kw != 0) out << "shortfall " << a.shortfall_kw << " when feasible ";
  } else {
    const bool up = target_kw > t.max_kw;
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (a.target_kw[i] != (up ? members[i].max_kw : members[i].min_kw)) {
        out << "member " << i << " at " << a.target_kw[i] << " not at its bound ";
        break;
      }
    }
    if (a.shortfall_kw != a.requested_kw - a.allocated_kw) out << "shortfall " << a.shortfall_kw;
    if ((a.shortfall_kw > 0) != up) out << "shortfall of the wrong sign ";
  }
  return out.str();
}

// Stability between two targets: every member moves in the direction of the
// target's move or not at all, and, both feasible, the members' total movement
// is the target's.
std::string StabilityBreach(const std::vector<Member>& members, double from_kw,
                            const Allocation& from, double to_kw, const Allocation& to) {
  std::ostringstream out;
  out.precision(17);
  const double direction = to_kw >= from_kw ? 1 : -1;
  double moved = 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const double change = to.target_kw[i] - from.target_kw[i];
    moved += std::abs(change);
    if (change * direction < -MoveTol(members[i])) {
      out << "member " << i << " moved " << change << " against the target's " << to_kw - from_kw;
      return out.str();
    }
  }
  if (Feasible(members, from_kw) && Feasible(members, to_kw) &&
      std::abs(moved - std::abs(to_kw - from_kw)) > 1e-6 * TotalsOf(members).scale_kw) {
    out << "members moved " << moved << " in all for a target move of " << to_kw - from_kw;
  }
  return out.str();
}

int CountChanged(const std::vector<Member>& members, const Allocation& a, const Allocation& b) {
  int changed = 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (std::abs(a.target_kw[i] - b.target_kw[i]) > MoveTol(members[i])) ++changed;
  }
  return changed;
}

}  // namespace

// --- Policy names ------------------------------------------------------------

TEST_CASE("policy names round trip through ParsePolicy", "[unit][dispatch]") {
  CHECK(PolicyName(Policy::kProRata) == "pro_rata");
  CHECK(PolicyName(Policy::kSocBalance) == "soc_balance");
  CHECK(PolicyName(Policy::kMeritOrder) == "merit_order");
  CHECK(PolicyName(Policy::kFairShare) == "fair_share");
  for (Policy p : kPolicies) {
    INFO(PolicyName(p));
    REQUIRE(ParsePolicy(PolicyName(p)).has_value());
    CHECK(*ParsePolicy(PolicyName(p)) == p);
  }
}

TEST_CASE("unknown policy names are rejected", "[unit][dispatch]") {
  for (const char* name :
       {"", "pro-rata", "ProRata", "PRO_RATA", " pro_rata", "pro_rata ", "merit", "fair_share\n"}) {
    INFO("'" << name << "'");
    CHECK_FALSE(ParsePolicy(name).has_value());
  }
}

// --- Hand-worked examples ----------------------------------------------------

TEST_CASE("pro rata shares the gap from baseline by headroom in the needed direction",
          "[unit][dispatch]") {
  // Baselines sum to 0. Room up: 10, 20, 10 (40); room down: 10, 0, 30 (40).
  std::vector<Member> fleet = {Flex(0, -10, 10), Flex(0, 0, 20), Flex(0, -30, 10)};
  Allocation up = Allocate(Policy::kProRata, 20, fleet, kHourS);
  CHECK(up.target_kw == std::vector<double>{5, 10, 5});
  CHECK(up.allocated_kw == 20);
  CHECK(up.shortfall_kw == 0);

  Allocation down = Allocate(Policy::kProRata, -20, fleet, kHourS);
  CHECK(down.target_kw == std::vector<double>{-5, 0, -15});

  // Baselines 2 and -1 (1 kW in all); -11 needs 12 kW less of room 8 and 16.
  Allocation odd = Allocate(Policy::kProRata, -11, {Flex(2, -6, 5), Flex(-1, -17, 3)}, kHourS);
  CHECK(odd.target_kw[0] == Approx(-2.0));
  CHECK(odd.target_kw[1] == Approx(-9.0));
  CHECK(odd.allocated_kw == Approx(-11.0));
}

TEST_CASE("a target beyond the fleet puts every member at its bound and reports the shortfall",
          "[unit][dispatch]") {
  std::vector<Member> fleet = {Flex(0, -10, 10), Flex(0, 0, 20), Flex(0, -30, 10)};
  for (Policy p : kPolicies) {
    INFO(PolicyName(p));
    Allocation up = Allocate(p, 100, fleet, kHourS);
    CHECK(up.target_kw == std::vector<double>{10, 20, 10});
    CHECK(up.requested_kw == 100);
    CHECK(up.allocated_kw == 40);
    CHECK(up.shortfall_kw == 60);

    Allocation down = Allocate(p, -100, fleet, kHourS);
    CHECK(down.target_kw == std::vector<double>{-10, 0, -30});
    CHECK(down.allocated_kw == -40);
    CHECK(down.shortfall_kw == -60);
  }
}

TEST_CASE("an empty fleet allocates nothing and reports the whole target as shortfall",
          "[unit][dispatch]") {
  for (Policy p : kPolicies) {
    INFO(PolicyName(p));
    Allocation none = Allocate(p, 12.5, {}, kHourS);
    CHECK(none.target_kw.empty());
    CHECK(none.allocated_kw == 0);
    CHECK(none.shortfall_kw == 12.5);
    CHECK(Allocate(p, 0, {}, kHourS).shortfall_kw == 0);
  }
}

TEST_CASE("fair share runs every member at the same fraction of its range", "[unit][dispatch]") {
  // Range -5..65 kW; 30 kW is half way. The fixed member stays where it is.
  std::vector<Member> fleet = {Flex(10, 0, 10), Flex(-10, -10, 10), Flex(5, 5, 5), Flex(0, 0, 40)};
  Allocation half = Allocate(Policy::kFairShare, 30, fleet, kHourS);
  CHECK(half.target_kw == std::vector<double>{5, 0, 5, 20});
  // A quarter: 12.5 kW. Baselines play no part.
  Allocation quarter = Allocate(Policy::kFairShare, 12.5, fleet, kHourS);
  CHECK(quarter.target_kw == std::vector<double>{2.5, -5, 5, 10});
}

TEST_CASE("merit order moves the cheapest members from baseline first", "[unit][dispatch]") {
  std::vector<Member> fleet = {Flex(0, -10, 10, 3), Flex(0, -10, 10, 1), Flex(0, -10, 10, 2)};
  // 15 kW more: the cost-1 member gives all 10, the cost-2 member the other 5.
  CHECK(Allocate(Policy::kMeritOrder, 15, fleet, kHourS).target_kw ==
        std::vector<double>{0, 10, 5});
  // 12 kW less: again the cheapest deviation first.
  CHECK(Allocate(Policy::kMeritOrder, -12, fleet, kHourS).target_kw ==
        std::vector<double>{0, -10, -2});
  // At the baselines nobody moves.
  CHECK(Allocate(Policy::kMeritOrder, 0, fleet, kHourS).target_kw == std::vector<double>{0, 0, 0});
}

TEST_CASE("merit order starts from baselines and skips members with no room", "[unit][dispatch]") {
  // Baselines 4 + 0 + 2 = 6 kW. The cheapest is at its maximum, so 9 kW
  // needs 3 kW from the next cheapest.
  std::vector<Member> fleet = {Flex(4, 0, 4, 0), Flex(0, -5, 5, 9), Flex(2, 0, 6, 1)};
  CHECK(Allocate(Policy::kMeritOrder, 9, fleet, kHourS).target_kw == std::vector<double>{4, 0, 5});
  // 1 kW needs 5 kW less: 4 from the cheapest, 1 from the next.
  CHECK(Allocate(Policy::kMeritOrder, 1, fleet, kHourS).target_kw == std::vector<double>{0, 0, 1});
}

TEST_CASE("merit order breaks cost ties by member index", "[unit][dispatch]") {
  std::vector<Member> fleet = {Flex(0, -10, 10, 5), Flex(0, -10, 10, 1), Flex(0, -10, 10, 1),
                               Flex(0, -10, 10, 1)};
  CHECK(Allocate(Policy::kMeritOrder, 14, fleet, kHourS).target_kw ==
        std::vector<double>{0, 10, 4, 0});
  CHECK(Allocate(Policy::kMeritOrder, -25, fleet, kHourS).target_kw ==
        std::vector<double>{0, -10, -10, -5});
}

TEST_CASE("soc balance equalises the projected state of charge of storage", "[unit][dispatch]") {
  // One hour; 100 kWh is 1 kW per SOC point, 200 kWh is 2. Outputs at level L:
  // 80-L, 60-L and 2(50-L); storage must make 40 - 10 (the PV's baseline) = 30
  // kW, so L = 52.5: the fullest discharges most and the emptiest charges.
  std::vector<Member> fleet = {Battery(80, 100, -50, 50), Battery(60, 100, -50, 50),
                               Battery(50, 200, -50, 50), Flex(10, 0, 30)};
  Allocation a = Allocate(Policy::kSocBalance, 40, fleet, kHourS);
  CHECK(a.target_kw[0] == Approx(27.5));
  CHECK(a.target_kw[1] == Approx(7.5));
  CHECK(a.target_kw[2] == Approx(-5.0));
  CHECK(a.target_kw[3] == 10);  // not storage: stays at baseline
  for (int i = 0; i < 3; ++i) {
    CHECK(ProjectedSoc(fleet[i], a.target_kw[i], kHourS) == Approx(52.5));
  }
  // Half an hour doubles the power per SOC point (2 and 4 kW), so the same
  // level needs twice the power: 60 kW from storage.
  std::vector<Member> big = {Battery(80, 100, -100, 100), Battery(60, 100, -100, 100),
                             Battery(50, 200, -100, 100), Flex(10, 0, 30)};
  Allocation fast = Allocate(Policy::kSocBalance, 70, big, kHourS / 2);
  CHECK(fast.target_kw[0] == Approx(55.0));
  CHECK(fast.target_kw[1] == Approx(15.0));
  CHECK(fast.target_kw[2] == Approx(-10.0));
  CHECK(fast.target_kw[3] == 10);
}

TEST_CASE("soc balance levels the members off their limits when a limit binds",
          "[unit][dispatch]") {
  std::vector<Member> fleet = {Battery(80, 100, -50, 50), Battery(60, 100, -50, 50),
                               Battery(50, 200, -50, 50), Flex(10, 0, 30)};
  // 130 kW from storage: the fullest stops at 50 kW (projected 30 %); the
  // others level at 80/3 % with 100/3 and 140/3 kW.
  Allocation a = Allocate(Policy::kSocBalance, 140, fleet, kHourS);
  CHECK(a.target_kw[0] == 50);
  CHECK(a.target_kw[1] == Approx(100.0 / 3));
  CHECK(a.target_kw[2] == Approx(140.0 / 3));
  CHECK(a.target_kw[3] == 10);
}

TEST_CASE("soc balance uses other members, pro rata, only beyond what storage can do",
          "[unit][dispatch]") {
  std::vector<Member> fleet = {Battery(80, 100, -50, 50), Battery(60, 100, -50, 50),
                               Battery(50, 200, -50, 50), Flex(10, 0, 30), Flex(0, -20, 20)};
  // Storage gives its 150 kW; the others go from 10 to 30 kW in all, 20 kW
  // shared by room up (20 and 20).
  Allocation up = Allocate(Policy::kSocBalance, 180, fleet, kHourS);
  CHECK(up.target_kw == std::vector<double>{50, 50, 50, 20, 10});
  // Storage takes 150 kW; -155 needs the others 15 kW below their baselines,
  // shared by room down (10 and 20).
  Allocation down = Allocate(Policy::kSocBalance, -155, fleet, kHourS);
  CHECK(down.target_kw == std::vector<double>{-50, -50, -50, 5, -10});
}

TEST_CASE("soc balance counts as storage only members with capacity and a known soc",
          "[unit][dispatch]") {
  Member no_soc = Battery(-1, 100, -50, 50);
  Member no_capacity = Battery(90, 0, -50, 50);
  std::vector<Member> fleet = {Battery(50, 100, -50, 50), no_soc, no_capacity};
  // Only the first is storage and can cover 20 kW alone; the others stay at baseline.
  CHECK(Allocate(Policy::kSocBalance, 20, fleet, kHourS).target_kw ==
        std::vector<double>{20, 0, 0});
}

TEST_CASE("soc balance with no storage is pro rata", "[unit][dispatch]") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 50; ++trial) {
    Fleet fleet = RandomFleet(rng);
    for (Member& m : fleet.members) m.energy_capacity_kwh = 0;
    const double target = FeasibleTarget(fleet.members, rng);
    INFO("trial " << trial);
    CHECK(Allocate(Policy::kSocBalance, target, fleet.members, fleet.duration_s).target_kw ==
          Allocate(Policy::kProRata, target, fleet.members, fleet.duration_s).target_kw);
  }
}

// --- Properties of every policy on random fleets ------------------------------

TEST_CASE("every policy keeps limits, meets feasible targets and saturates infeasible ones",
          "[unit][dispatch]") {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    for (double target : ProbeTargets(fleet.members, rng)) {
      for (Policy p : kPolicies) {
        Allocation a = Allocate(p, target, fleet.members, fleet.duration_s);
        INFO("trial " << trial << " " << PolicyName(p) << " " << fleet.members.size()
                      << " members, target " << target);
        CHECK(ContractBreach(fleet.members, target, a) == "");
      }
    }
  }
}

TEST_CASE("every policy meets a feasible target to floating-point rounding", "[unit][dispatch]") {
  // Far tighter than the contract check: no policy may leave an algorithmic
  // error (an unconverged level, an approximate share) in the sum.
  std::mt19937 rng(13);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    const double target = FeasibleTarget(fleet.members, rng);
    const double tolerance = 1e-12 * TotalsOf(fleet.members).scale_kw;
    for (Policy p : kPolicies) {
      Allocation a = Allocate(p, target, fleet.members, fleet.duration_s);
      INFO("trial " << trial << " " << PolicyName(p) << " target " << target);
      CHECK(std::abs(Sum(a.target_kw) - target) <= tolerance);
    }
  }
}

TEST_CASE("every policy gives bit-identical output for the same input", "[unit][dispatch]") {
  std::mt19937 rng(2);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    const double target = FeasibleTarget(fleet.members, rng);
    for (Policy p : kPolicies) {
      Allocation a = Allocate(p, target, fleet.members, fleet.duration_s);
      Allocation b = Allocate(p, target, fleet.members, fleet.duration_s);
      INFO("trial " << trial << " " << PolicyName(p));
      CHECK(a.target_kw == b.target_kw);
      CHECK(a.allocated_kw == b.allocated_kw);
      CHECK(a.shortfall_kw == b.shortfall_kw);
    }
  }
}

TEST_CASE("under every policy members follow the target's move and move by it in total",
          "[unit][dispatch]") {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    Totals t = TotalsOf(fleet.members);
    const double range = t.max_kw - t.min_kw;
    // Near the baselines the needed direction flips; near the ends the fleet saturates.
    const double from =
        trial % 3 == 0 ? t.baseline_kw + (unit(rng) - 0.5) : FeasibleTarget(fleet.members, rng);
    for (double delta : {1e-6, 1e-3, 0.5, 0.05 * range, 0.3 * range, range + 10}) {
      for (double sign : {1.0, -1.0}) {
        const double to = from + sign * delta;
        for (Policy p : kPolicies) {
          Allocation a = Allocate(p, from, fleet.members, fleet.duration_s);
          Allocation b = Allocate(p, to, fleet.members, fleet.duration_s);
          INFO("trial " << trial << " " << PolicyName(p) << " " << from << " -> " << to);
          CHECK(StabilityBreach(fleet.members, from, a, to, b) == "");
        }
      }
    }
  }
}

TEST_CASE("under every policy each member's target rises with the fleet's target",
          "[unit][dispatch]") {
  std::mt19937 rng(4);
  for (int trial = 0; trial < 100; ++trial) {
    Fleet fleet = RandomFleet(rng);
    Totals t = TotalsOf(fleet.members);
    for (Policy p : kPolicies) {
      INFO("trial " << trial << " " << PolicyName(p));
      // A sweep from below the range to above it, through the baselines.
      std::vector<double> targets = {t.baseline_kw};
      for (int k = 0; k <= 40; ++k)
        targets.push_back(t.min_kw - 5 + k * (t.max_kw - t.min_kw + 10) / 40);
      std::sort(targets.begin(), targets.end());
      Allocation previous = Allocate(p, targets[0], fleet.members, fleet.duration_s);
      for (std::size_t k = 1; k < targets.size(); ++k) {
        Allocation next = Allocate(p, targets[k], fleet.members, fleet.duration_s);
        CHECK(StabilityBreach(fleet.members, targets[k - 1], previous, targets[k], next) == "");
        previous = std::move(next);
      }
    }
  }
}

// --- Properties of one policy ------------------------------------------------

TEST_CASE("pro rata moves every member by the same share of its room", "[unit][dispatch]") {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    const double target = FeasibleTarget(fleet.members, rng);
    Allocation a = Allocate(Policy::kProRata, target, fleet.members, fleet.duration_s);
    Totals t = TotalsOf(fleet.members);
    const bool up = target > t.baseline_kw;
    double room = 0;
    for (const Member& m : fleet.members)
      room += up ? m.max_kw - m.baseline_kw : m.baseline_kw - m.min_kw;
    const double share = std::abs(target - t.baseline_kw) / room;
    INFO("trial " << trial << " share " << share);
    for (std::size_t i = 0; i < fleet.members.size(); ++i) {
      const Member& m = fleet.members[i];
      const double expected = m.baseline_kw + (up ? share * (m.max_kw - m.baseline_kw)
                                                  : -share * (m.baseline_kw - m.min_kw));
      if (std::abs(a.target_kw[i] - expected) > 1e-6 * (1 + std::abs(expected))) {
        FAIL("member " << i << " at " << a.target_kw[i] << ", expected " << expected);
      }
    }
  }
}

TEST_CASE("fair share runs every member at one fraction of its range", "[unit][dispatch]") {
  std::mt19937 rng(6);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    const double target = FeasibleTarget(fleet.members, rng);
    Allocation a = Allocate(Policy::kFairShare, target, fleet.members, fleet.duration_s);
    Totals t = TotalsOf(fleet.members);
    const double f = (target - t.min_kw) / (t.max_kw - t.min_kw);
    INFO("trial " << trial << " fraction " << f);
    for (std::size_t i = 0; i < fleet.members.size(); ++i) {
      const Member& m = fleet.members[i];
      const double expected = m.min_kw + f * (m.max_kw - m.min_kw);
      if (std::abs(a.target_kw[i] - expected) > 1e-6 * (1 + std::abs(expected))) {
        FAIL("member " << i << " at " << a.target_kw[i] << ", expected " << expected);
      }
      if (m.min_kw == m.max_kw) CHECK(a.target_kw[i] == m.min_kw);
    }
  }
}

TEST_CASE("merit order uses a member only once every cheaper one is at its bound",
          "[unit][dispatch]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    const std::vector<Member>& m = fleet.members;
    const double target = FeasibleTarget(m, rng);
    Allocation a = Allocate(Policy::kMeritOrder, target, m, fleet.duration_s);
    const bool up = target > TotalsOf(m).baseline_kw;
    // The most expensive member moved from baseline, in (cost, index) order.
    std::ptrdiff_t last = -1;
    for (std::size_t i = 0; i < m.size(); ++i) {
      if (std::abs(a.target_kw[i] - m[i].baseline_kw) <= MoveTol(m[i])) continue;
      if (last < 0 || m[i].cost >= m[last].cost) {  // ties: the higher index is later
        last = static_cast<std::ptrdiff_t>(i);
      }
    }
    if (last < 0) continue;
    INFO("trial " << trial << " marginal member " << last);
    for (std::size_t i = 0; i < m.size(); ++i) {
      const bool cheaper = m[i].cost < m[last].cost ||
                           (m[i].cost == m[last].cost && static_cast<std::ptrdiff_t>(i) < last);
      const double bound = up ? m[i].max_kw : m[i].min_kw;
      if (cheaper && std::abs(a.target_kw[i] - bound) > MoveTol(m[i])) {
        FAIL("member " << i << " (cost " << m[i].cost << ") at " << a.target_kw[i]
                       << " short of its bound " << bound << " while the marginal member (cost "
                       << m[last].cost << ") moves");
      }
    }
  }
}

TEST_CASE("merit order moves only the marginal members for a small change of target",
          "[unit][dispatch]") {
  std::mt19937 rng(8);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    Totals t = TotalsOf(fleet.members);
    const double from = trial % 3 == 0 ? t.baseline_kw : FeasibleTarget(fleet.members, rng);
    for (double delta : {1e-3, -1e-3, 0.01, -0.01}) {
      Allocation a = Allocate(Policy::kMeritOrder, from, fleet.members, fleet.duration_s);
      Allocation b = Allocate(Policy::kMeritOrder, from + delta, fleet.members, fleet.duration_s);
      INFO("trial " << trial << " " << from << " -> " << from + delta);
      CHECK(CountChanged(fleet.members, a, b) <= 2);
    }
  }
}

TEST_CASE("soc balance leaves the storage members off their limits at one projected soc",
          "[unit][dispatch]") {
  std::mt19937 rng(9);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    const std::vector<Member>& m = fleet.members;
    const double target = FeasibleTarget(m, rng);
    Allocation a = Allocate(Policy::kSocBalance, target, m, fleet.duration_s);
    double lowest = 1e300;
    double highest = -1e300;
    // Water-filling's optimality: a member that could still discharge more ends
    // no fuller than one that could still discharge less.
    double fullest_with_room_up = -1e300;
    double emptiest_with_room_down = 1e300;
    for (std::size_t i = 0; i < m.size(); ++i) {
      if (!IsStorage(m[i])) continue;
      const double x = a.target_kw[i];
      const double soc = ProjectedSoc(m[i], x, fleet.duration_s);
      if (m[i].min_kw < x && x < m[i].max_kw) {
        lowest = std::min(lowest, soc);
        highest = std::max(highest, soc);
      }
      if (x < m[i].max_kw) fullest_with_room_up = std::max(fullest_with_room_up, soc);
      if (x > m[i].min_kw) emptiest_with_room_down = std::min(emptiest_with_room_down, soc);
    }
    INFO("trial " << trial << " target " << target);
    if (lowest <= highest) CHECK(highest - lowest <= 1e-6 * (1 + std::abs(highest)));
    if (fullest_with_room_up > -1e300 && emptiest_with_room_down < 1e300) {
      CHECK(fullest_with_room_up <=
            emptiest_with_room_down + 1e-6 * (1 + std::abs(emptiest_with_room_down)));
    }
  }
}

TEST_CASE("soc balance never discharges a member while a fuller one of the same size has room",
          "[unit][dispatch]") {
  // With equal capacities the projected order is the SOC order: a member
  // discharges beyond what its limits force only if every fuller member with
  // room is discharging too, and by at least as much.
  std::mt19937 rng(10);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<Member> fleet;
    const int n = std::uniform_int_distribution<int>(1, 50)(rng);
    for (int i = 0; i < n; ++i) {
      fleet.push_back(Battery(100 * unit(rng), 100, -100 * unit(rng), 100 * unit(rng)));
    }
    fleet.push_back(Flex(5, 0, 50));  // not storage
    const double target = FeasibleTarget(fleet, rng);
    Allocation a = Allocate(Policy::kSocBalance, target, fleet, kHourS);
    INFO("trial " << trial << " target " << target);
    for (int j = 0; j < n; ++j) {
      const double xj = a.target_kw[j];
      if (xj <= std::max(0.0, fleet[j].min_kw) + kTol) continue;  // not discharging by choice
      for (int i = 0; i < n; ++i) {
        if (fleet[i].soc_pct <= fleet[j].soc_pct || a.target_kw[i] >= fleet[i].max_kw) continue;
        if (a.target_kw[i] < xj - 1e-6) {
          FAIL("member " << j << " (soc " << fleet[j].soc_pct << ") discharges " << xj
                         << " kW while member " << i << " (soc " << fleet[i].soc_pct
                         << ") gives only " << a.target_kw[i] << " of " << fleet[i].max_kw);
        }
      }
    }
  }
}

TEST_CASE("soc balance moves other members only when storage is at its limit", "[unit][dispatch]") {
  std::mt19937 rng(12);
  for (int trial = 0; trial < 300; ++trial) {
    Fleet fleet = RandomFleet(rng);
    const std::vector<Member>& m = fleet.members;
    const double target = FeasibleTarget(m, rng);
    Allocation a = Allocate(Policy::kSocBalance, target, m, fleet.duration_s);
    bool storage_at_max = true;
    bool storage_at_min = true;
    bool any_storage = false;
    for (std::size_t i = 0; i < m.size(); ++i) {
      if (!IsStorage(m[i])) continue;
      any_storage = true;
      storage_at_max = storage_at_max && a.target_kw[i] == m[i].max_kw;
      storage_at_min = storage_at_min && a.target_kw[i] == m[i].min_kw;
    }
    if (!any_storage) continue;
    INFO("trial " << trial << " target " << target);
    for (std::size_t i = 0; i < m.size(); ++i) {
      if (IsStorage(m[i])) continue;
      const double change = a.target_kw[i] - m[i].baseline_kw;
      if (change > MoveTol(m[i]) && !storage_at_max) FAIL("member " << i << " raised " << change);
      if (change < -MoveTol(m[i]) && !storage_at_min) FAIL("member " << i << " lowered " << change);
    }
  }
}
