// Splits a substation's net imbalance across its active DERs. Pure logic.
//
// Each DER runs at its baseline (what it would do uncontrolled) unless told
// otherwise. The DERs together must make up `imbalance_kw` (load - supply:
// positive is a deficit the DERs must export into). The gap between that and
// the sum of baselines is shared in proportion to each DER's headroom in the
// needed direction (max_kw - baseline to raise output, baseline - min_kw to
// lower it), so no DER is asked beyond its limits and the setpoints sum to
// the imbalance whenever the fleet can cover it. Only DERs with headroom in
// the needed direction are given a setpoint.
#ifndef DERMS_CLOUD_AGGREGATOR_DISPATCH_IMBALANCE_SPLIT_H_
#define DERMS_CLOUD_AGGREGATOR_DISPATCH_IMBALANCE_SPLIT_H_

#include <string>
#include <vector>

namespace derms::dispatch {

struct DerCapability {
  std::string der_id;
  double baseline_kw = 0;  // output with no control, within [min_kw, max_kw]
  double min_kw = 0;       // lowest feasible output now (-charge capability)
  double max_kw = 0;       // highest feasible output now (discharge capability)
};

struct Setpoint {
  std::string der_id;
  double target_kw = 0;
};

struct SplitResult {
  std::vector<Setpoint> setpoints;  // in the order of the input
  double uncontrolled_kw = 0;       // sum of baselines
  double needed_kw = 0;             // imbalance - uncontrolled: what control must add
  double headroom_kw = 0;           // headroom in the needed direction
  double covered_kw = 0;            // DER output after control (sum of targets and baselines)
  double residual_kw = 0;           // imbalance - covered: what the DERs could not meet
};

// REQUIRES: every capability has min_kw <= max_kw and finite values.
SplitResult SplitImbalance(double imbalance_kw, const std::vector<DerCapability>& ders);

}  // namespace derms::dispatch

#endif  // DERMS_CLOUD_AGGREGATOR_DISPATCH_IMBALANCE_SPLIT_H_
