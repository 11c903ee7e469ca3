#include "cloud_aggregator/dispatch/imbalance_split.h"

#include <algorithm>

namespace derms::dispatch {

SplitResult SplitImbalance(double imbalance_kw, const std::vector<DerCapability>& ders) {
  SplitResult r;
  for (const auto& d : ders) r.uncontrolled_kw += std::clamp(d.baseline_kw, d.min_kw, d.max_kw);
  r.needed_kw = imbalance_kw - r.uncontrolled_kw;
  bool raise = r.needed_kw > 0;
  auto headroom = [raise](const DerCapability& d) {
    double base = std::clamp(d.baseline_kw, d.min_kw, d.max_kw);
    return raise ? d.max_kw - base : base - d.min_kw;
  };
  for (const auto& d : ders) r.headroom_kw += headroom(d);
  double share = 0;
  if (r.headroom_kw > 0) share = std::min(1.0, std::abs(r.needed_kw) / r.headroom_kw);
  r.covered_kw = r.uncontrolled_kw;
  if (share > 0) {
    for (const auto& d : ders) {
      double h = headroom(d);
      if (h <= 0) continue;
      double base = std::clamp(d.baseline_kw, d.min_kw, d.max_kw);
      // Exact limits when the fleet is saturated, so rounding never exceeds them.
      double target =
          share == 1.0 ? (raise ? d.max_kw : d.min_kw) : base + (raise ? share * h : -share * h);
      r.setpoints.push_back({d.der_id, target});
      r.covered_kw += target - base;
    }
  }
  // Feasible: the split covers the imbalance exactly; say so rather than
  // report rounding noise as a shortfall.
  if (share < 1.0 && r.headroom_kw > 0) r.covered_kw = imbalance_kw;
  r.residual_kw = imbalance_kw - r.covered_kw;
  return r;
}

}  // namespace derms::dispatch
