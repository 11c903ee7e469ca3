#include "cloud_aggregator/dispatch/allocation.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

namespace derms::dispatch {
namespace {

// Moving the floating-point residue onto one member lands the sum on the
// target, or a few ulps from it when no choice of double does; in the
// latter case the passes only trade one ulp for another, so stop early.
constexpr int kMaxResiduePasses = 4;

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// The baseline within the limits, so a caller's rounding in the baseline can
// never push a member outside [min_kw, max_kw].
double Baseline(const Member& m) { return std::clamp(m.baseline_kw, m.min_kw, m.max_kw); }

bool IsStorage(const Member& m) { return m.energy_capacity_kwh > 0 && m.soc_pct >= 0; }

bool Inside(const Member& m, double kw) { return m.min_kw < kw && kw < m.max_kw; }

// Always summed in index order, so the caller and the tests see the same total.
double SumInOrder(const std::vector<double>& x) {
  double sum = 0;
  for (double kw : x) sum += kw;
  return sum;
}

// The member with the most room in the direction `up` among those `eligible`
// (the lowest index on ties), or -1 if none has any room.
template <typename Eligible>
std::ptrdiff_t MostRoom(const std::vector<Member>& members, const std::vector<double>& x, bool up,
                        Eligible eligible) {
  std::ptrdiff_t best = -1;
  double best_room = 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (!eligible(i)) continue;
    double room = up ? members[i].max_kw - x[i] : x[i] - members[i].min_kw;
    if (room > best_room) {
      best_room = room;
      best = static_cast<std::ptrdiff_t>(i);
    }
  }
  return best;
}

// Moves the floating-point residue between `target_kw` and the sum of `x` onto
// one member, so a feasible allocation sums to the target or within a few
// ulps of it. The residue goes to `preferred` while it has room, else to the
// `eligible` member with the most room (the members the policy is moving, so
// a member at a bound or parked at its baseline is not nudged off it), and
// only then to any member. The residue is rounding noise, far below any
// tolerance that matters for stability.
template <typename Eligible>
void SettleResidue(const std::vector<Member>& members, double target_kw, std::ptrdiff_t preferred,
                   Eligible eligible, std::vector<double>& x) {
  for (int pass = 0; pass < kMaxResiduePasses; ++pass) {
    const double residue = target_kw - SumInOrder(x);
    if (residue == 0) return;
    const bool up = residue > 0;
    std::ptrdiff_t pick = -1;
    if (preferred >= 0) {
      const Member& m = members[preferred];
      if (up ? x[preferred] < m.max_kw : x[preferred] > m.min_kw) pick = preferred;
    }
    if (pick < 0) pick = MostRoom(members, x, up, eligible);
    if (pick < 0) pick = MostRoom(members, x, up, [](std::size_t) { return true; });
    if (pick < 0) return;
    const Member& m = members[pick];
    const double before = x[pick];
    x[pick] = up ? std::min(before + residue, m.max_kw) : std::max(before + residue, m.min_kw);
    // Below the member's precision: nothing more can be done.
    if (x[pick] == before) return;
  }
}

// Pro rata from baselines over the members `in_group` (others untouched): the
// gap between `target_kw` and the group's baselines is shared in proportion to
// each member's room in the needed direction.
template <typename InGroup>
void ProRata(const std::vector<Member>& members, double target_kw, InGroup in_group,
             std::vector<double>& x) {
  double base_sum = 0;
  double room_up = 0;
  double room_down = 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (!in_group(i)) continue;
    const Member& m = members[i];
    const double base = Baseline(m);
    base_sum += base;
    room_up += m.max_kw - base;
    room_down += base - m.min_kw;
  }
  const double need = target_kw - base_sum;
  const bool up = need > 0;
  const double room = up ? room_up : room_down;
  const double share = room > 0 ? std::min(1.0, std::abs(need) / room) : 0.0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (!in_group(i)) continue;
    const Member& m = members[i];
    const double base = Baseline(m);
    if (share == 1.0) {
      // Exact limits when saturated, so rounding never exceeds them.
      x[i] = up ? m.max_kw : m.min_kw;
    } else if (up) {
      x[i] = std::min(base + share * (m.max_kw - base), m.max_kw);
    } else {
      x[i] = std::max(base - share * (base - m.min_kw), m.min_kw);
    }
  }
}

void AllocateProRata(const std::vector<Member>& members, double target_kw, std::vector<double>& x) {
  ProRata(
      members, target_kw, [](std::size_t) { return true; }, x);
  SettleResidue(
      members, target_kw, -1, [&](std::size_t i) { return Inside(members[i], x[i]); }, x);
}

void AllocateFairShare(const std::vector<Member>& members, double target_kw, double sum_min_kw,
                       double sum_max_kw, std::vector<double>& x) {
  const double range = sum_max_kw - sum_min_kw;
  const double f = range > 0 ? std::clamp((target_kw - sum_min_kw) / range, 0.0, 1.0) : 0.0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const Member& m = members[i];
    x[i] = f == 1.0 ? m.max_kw : std::min(m.min_kw + f * (m.max_kw - m.min_kw), m.max_kw);
  }
  SettleResidue(
      members, target_kw, -1, [&](std::size_t i) { return Inside(members[i], x[i]); }, x);
}

// A member that can move from its baseline in the needed direction.
struct MeritCandidate {
  double cost;
  std::size_t index;
  double room_kw;
};

bool MeritLess(const MeritCandidate& a, const MeritCandidate& b) {
  return a.cost < b.cost || (a.cost == b.cost && a.index < b.index);
}

// Instead of sorting all candidates, a weighted quickselect finds the marginal
// member (the first, in (cost, index) order, at which the cumulative room
// reaches the need): expected O(n), and the result depends only on that total
// order, so it is the same as a sort would give.
void AllocateMeritOrder(const std::vector<Member>& members, double target_kw,
                        std::vector<double>& x) {
  double base_sum = 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    x[i] = Baseline(members[i]);
    base_sum += x[i];
  }
  const double need = target_kw - base_sum;
  if (need == 0) return;
  const bool up = need > 0;

  std::vector<MeritCandidate> c;
  c.reserve(members.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    const double room = up ? members[i].max_kw - x[i] : x[i] - members[i].min_kw;
    if (room > 0) c.push_back({members[i].cost, i, room});
  }

  // Invariant: candidates before `lo` are used in full, those from `hi` on are
  // not used, and `remaining` is what [lo, hi) must still provide.
  double remaining = std::abs(need);
  std::size_t lo = 0;
  std::size_t hi = c.size();
  std::ptrdiff_t marginal = -1;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    std::nth_element(c.begin() + lo, c.begin() + mid, c.begin() + hi, MeritLess);
    double left = 0;
    for (std::size_t k = lo; k < mid; ++k) left += c[k].room_kw;
    if (remaining <= left) {
      hi = mid;
    } else if (remaining <= left + c[mid].room_kw) {
      remaining -= left;
      marginal = static_cast<std::ptrdiff_t>(mid);
      lo = mid;
      break;
    } else {
      remaining -= left + c[mid].room_kw;
      lo = mid + 1;
    }
  }

  for (std::size_t k = 0; k < lo; ++k) {
    const Member& m = members[c[k].index];
    x[c[k].index] = up ? m.max_kw : m.min_kw;
  }
  std::ptrdiff_t preferred = -1;
  if (marginal >= 0) {
    const std::size_t i = c[marginal].index;
    const Member& m = members[i];
    x[i] = up ? std::min(x[i] + remaining, m.max_kw) : std::max(x[i] - remaining, m.min_kw);
    preferred = static_cast<std::ptrdiff_t>(i);
  }
  // Rounding in `remaining` is settled on the marginal member first, so the
  // members used in full and those left at baseline stay bit-exact.
  SettleResidue(
      members, target_kw, preferred, [&](std::size_t i) { return Inside(members[i], x[i]); }, x);
}

// A storage member seen by water-filling. Its output at level L (the common
// projected SOC, in %) is clamp(kw_per_pct * (soc_pct - L), min_kw, max_kw).
struct StorageLevel {
  double kw_per_pct;  // output that lowers the projected SOC by one point
  double soc_pct;
  double min_kw;
  double max_kw;
  double at_max_below;  // at levels <= this the member runs at max_kw
  double at_min_above;  // at levels >= this the member runs at min_kw
};

double KwPerPct(const Member& m, double hours) { return m.energy_capacity_kwh / (100.0 * hours); }

double StorageKw(double kw_per_pct, double soc_pct, double min_kw, double max_kw, double level) {
  return std::clamp(kw_per_pct * (soc_pct - level), min_kw, max_kw);
}

// The level L at which the storage members' outputs sum to `target_kw`.
// REQUIRES: sum(min_kw) <= target_kw <= sum(max_kw) over `active`.
//
// The total is a non-increasing piecewise-linear function of L with a
// breakpoint where each member saturates. Each round evaluates it at the
// median breakpoint still inside the bracket (lo, hi), halving the
// breakpoints; members with no breakpoint left inside are folded into a
// constant or a linear term. Once no breakpoint is inside, the total is linear
// on the bracket and L is solved exactly: expected O(n) in all, no sort.
double WaterLevel(double target_kw, std::vector<StorageLevel>& active,
                  std::vector<double>& breakpoints) {
  double lo = -kInfinity;  // total(lo) >= target_kw
  double hi = kInfinity;   // total(hi) <= target_kw
  double constant_kw = 0;  // members saturated across the bracket
  double linear_kw = 0;    // sum of kw_per_pct * soc_pct of members linear across it
  double slope = 0;        // sum of kw_per_pct of those members
  while (true) {
    breakpoints.clear();
    std::size_t kept = 0;
    for (const StorageLevel& s : active) {
      const bool max_inside = lo < s.at_max_below && s.at_max_below < hi;
      const bool min_inside = lo < s.at_min_above && s.at_min_above < hi;
      if (!max_inside && !min_inside) {
        if (s.at_min_above <= lo) {
          constant_kw += s.min_kw;
        } else if (s.at_max_below >= hi) {
          constant_kw += s.max_kw;
        } else {
          linear_kw += s.kw_per_pct * s.soc_pct;
          slope += s.kw_per_pct;
        }
        continue;
      }
      if (max_inside) breakpoints.push_back(s.at_max_below);
      if (min_inside) breakpoints.push_back(s.at_min_above);
      active[kept++] = s;
    }
    active.resize(kept);
    if (breakpoints.empty()) break;

    auto median = breakpoints.begin() + breakpoints.size() / 2;
    std::nth_element(breakpoints.begin(), median, breakpoints.end());
    const double level = *median;
    double total = constant_kw + linear_kw - slope * level;
    for (const StorageLevel& s : active) {
      total += StorageKw(s.kw_per_pct, s.soc_pct, s.min_kw, s.max_kw, level);
    }
    if (total == target_kw) return level;
    if (total > target_kw) {
      lo = level;
    } else {
      hi = level;
    }
  }
  if (slope > 0) return std::clamp((constant_kw + linear_kw - target_kw) / slope, lo, hi);
  // The total is flat on the bracket: every level in it gives the same outputs.
  if (std::isfinite(lo)) return lo;
  if (std::isfinite(hi)) return hi;
  return 0;
}

void AllocateSocBalance(const std::vector<Member>& members, double target_kw, double duration_s,
                        std::vector<double>& x) {
  const double hours = duration_s / 3600.0;
  std::size_t storage_count = 0;
  double storage_min_kw = 0;
  double storage_max_kw = 0;
  double other_base_kw = 0;
  for (const Member& m : members) {
    if (IsStorage(m)) {
      ++storage_count;
      storage_min_kw += m.min_kw;
      storage_max_kw += m.max_kw;
    } else {
      other_base_kw += Baseline(m);
    }
  }
  if (storage_count == 0) {
    AllocateProRata(members, target_kw, x);
    return;
  }
  auto is_storage = [&](std::size_t i) { return IsStorage(members[i]); };
  auto is_other = [&](std::size_t i) { return !IsStorage(members[i]); };

  // Storage covers the target first, with the other members at baseline; only
  // what storage cannot cover goes to them.
  const double storage_target_kw = target_kw - other_base_kw;
  if (storage_target_kw >= storage_max_kw || storage_target_kw <= storage_min_kw) {
    const bool up = storage_target_kw >= storage_max_kw;
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (is_storage(i)) x[i] = up ? members[i].max_kw : members[i].min_kw;
    }
    ProRata(members, target_kw - (up ? storage_max_kw : storage_min_kw), is_other, x);
    SettleResidue(
        members, target_kw, -1,
        [&](std::size_t i) { return is_other(i) && Inside(members[i], x[i]); }, x);
    return;
  }

  std::vector<StorageLevel> active;
  active.reserve(storage_count);
  std::vector<double> breakpoints;
  breakpoints.reserve(2 * storage_count);
  for (std::size_t i = 0; i < members.size(); ++i) {
    const Member& m = members[i];
    if (!IsStorage(m)) {
      x[i] = Baseline(m);
      continue;
    }
    const double a = KwPerPct(m, hours);
    active.push_back(
        {a, m.soc_pct, m.min_kw, m.max_kw, m.soc_pct - m.max_kw / a, m.soc_pct - m.min_kw / a});
  }
  const double level = WaterLevel(storage_target_kw, active, breakpoints);
  for (std::size_t i = 0; i < members.size(); ++i) {
    const Member& m = members[i];
    if (IsStorage(m)) x[i] = StorageKw(KwPerPct(m, hours), m.soc_pct, m.min_kw, m.max_kw, level);
  }
  // Only storage members off their bounds take the residue: they all sit at
  // the common level, and a nudge of rounding size keeps them there.
  SettleResidue(
      members, target_kw, -1,
      [&](std::size_t i) { return is_storage(i) && Inside(members[i], x[i]); }, x);
}

}  // namespace

std::string_view PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kProRata:
      return "pro_rata";
    case Policy::kSocBalance:
      return "soc_balance";
    case Policy::kMeritOrder:
      return "merit_order";
    case Policy::kFairShare:
      return "fair_share";
  }
  return "unknown";
}

std::optional<Policy> ParsePolicy(std::string_view name) {
  for (Policy p :
       {Policy::kProRata, Policy::kSocBalance, Policy::kMeritOrder, Policy::kFairShare}) {
    if (PolicyName(p) == name) return p;
  }
  return std::nullopt;
}

Allocation Allocate(Policy policy, double target_kw, const std::vector<Member>& members,
                    double duration_s) {
  Allocation result;
  result.requested_kw = target_kw;
  std::vector<double>& x = result.target_kw;
  x.resize(members.size());

  double sum_min_kw = 0;
  double sum_max_kw = 0;
  for (const Member& m : members) {
    sum_min_kw += m.min_kw;
    sum_max_kw += m.max_kw;
  }
  // At or beyond the fleet's range there is one answer whatever the policy:
  // every member at the bound (exactly, so rounding never exceeds it).
  if (target_kw >= sum_max_kw || target_kw <= sum_min_kw) {
    const bool up = target_kw >= sum_max_kw;
    for (std::size_t i = 0; i < members.size(); ++i) {
      x[i] = up ? members[i].max_kw : members[i].min_kw;
    }
    result.allocated_kw = SumInOrder(x);
    result.shortfall_kw = target_kw - result.allocated_kw;
    return result;
  }

  switch (policy) {
    case Policy::kProRata:
      AllocateProRata(members, target_kw, x);
      break;
    case Policy::kSocBalance:
      AllocateSocBalance(members, target_kw, duration_s, x);
      break;
    case Policy::kMeritOrder:
      AllocateMeritOrder(members, target_kw, x);
      break;
    case Policy::kFairShare:
      AllocateFairShare(members, target_kw, sum_min_kw, sum_max_kw, x);
      break;
  }
  result.allocated_kw = SumInOrder(x);
  // Feasible: whatever rounding residue is left is not a shortfall.
  result.shortfall_kw = 0;
  return result;
}

}  // namespace derms::dispatch
