// Allocating a virtual DER's target output across its members. Pure logic:
// no transport, no storage, no strings on the hot path (members are indexed,
// the caller keeps the ids; order the members by der_id for determinism).
//
// A member is anything with a feasible output range for the dispatch
// duration: one DER, or a child virtual DER seen as the sum of its members.
// `target_kw` is the members' total output (positive exports). Every policy:
//   - keeps every member within [min_kw, max_kw];
//   - sums to `target_kw` whenever sum(min_kw) <= target_kw <= sum(max_kw),
//     and otherwise puts every member at the bound in the target's direction
//     and reports the rest as shortfall;
//   - is deterministic: the same input gives bit-identical output (ties are
//     broken by member index);
//   - is stable: as the target moves, every member moves in the same
//     direction or not at all, and the members' total movement equals the
//     target's movement (no member is pushed up while another is pulled down),
//     so a small change of target never reshuffles the fleet.
#ifndef DERMS_CLOUD_AGGREGATOR_DISPATCH_ALLOCATION_H_
#define DERMS_CLOUD_AGGREGATOR_DISPATCH_ALLOCATION_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace derms::dispatch {

enum class Policy {
  // The gap between the target and the members' baselines is shared in
  // proportion to each member's headroom in the needed direction
  // (max_kw - baseline_kw to raise output, baseline_kw - min_kw to lower it).
  kProRata,
  // Storage members (energy_capacity_kwh > 0, soc_pct known) are steered so
  // that their state of charge at the end of the dispatch duration is as equal
  // as the limits allow: discharge comes from the fullest first, charge goes to
  // the emptiest first (water-filling on projected SOC). Members that are not
  // storage are used, pro rata, only for what storage cannot cover.
  kSocBalance,
  // Cheapest deviation from baseline first: to raise output, members are
  // raised from baseline in ascending `cost` order; to lower it, lowered from
  // baseline in ascending `cost` order. Only the marginal member moves for a
  // small change of target.
  kMeritOrder,
  // Every member runs at the same fraction of its range:
  // target_i = min_kw + f * (max_kw - min_kw), one f for all.
  kFairShare,
};

// "pro_rata", "soc_balance", "merit_order", "fair_share".
std::string_view PolicyName(Policy policy);
std::optional<Policy> ParsePolicy(std::string_view name);

struct Member {
  double baseline_kw = 0;          // output with no control; min_kw <= baseline_kw <= max_kw
  double min_kw = 0;               // lowest output sustainable over the duration (-charge)
  double max_kw = 0;               // highest output sustainable over the duration (discharge)
  double soc_pct = -1;             // state of charge in [0, 100]; negative when unknown
  double energy_capacity_kwh = 0;  // 0: not storage
  double cost = 0;                 // merit order: cost per kWh of deviation from baseline
};

struct Allocation {
  std::vector<double> target_kw;  // one per member, in the members' order
  double requested_kw = 0;        // the target asked for
  double allocated_kw = 0;        // sum of target_kw
  double shortfall_kw = 0;        // requested - allocated; 0 when feasible
};

// REQUIRES: every value finite, min_kw <= baseline_kw <= max_kw,
// duration_s > 0 (used by kSocBalance to project SOC).
Allocation Allocate(Policy policy, double target_kw, const std::vector<Member>& members,
                    double duration_s);

}  // namespace derms::dispatch

#endif  // DERMS_CLOUD_AGGREGATOR_DISPATCH_ALLOCATION_H_
