// The aggregator's view of a curtailment: PV agents by DER id (each with the
// feeder bus and phase from its birth) in, one generation cap per agent out,
// with the reason for each and the voltages before and after, ready to be
// sent as controls (IEEE 2030.5 / CSIP-AUS opModGenLimW: cap_w) and recorded
// like a dispatch run. Wraps Curtail (curtailment.h); pure logic, no MQTT.
//
// Usage, from a module that handles vder/{id}/curtail:
//   auto plan = PlanCurtailment(feeder, agents, {FairnessPolicy::kEqualRatio});
//   if (!plan.ok())          -> reject the request: plan.status().message()
//   else if (!plan->feasible) -> answer with plan->reason, send nothing
//   else for (const PvCap& c : plan->caps) if (c.ratio > 0) send c.cap_w to c.der_id
#ifndef DERMS_FEEDER_CURTAILMENT_PLAN_H_
#define DERMS_FEEDER_CURTAILMENT_PLAN_H_

#include <string>
#include <vector>

#include "common/status.h"
#include "feeder/curtailment.h"
#include "feeder/feeder_model.h"

namespace derms::feeder {

// One PV edge agent as the fleet knows it.
struct PvAgent {
  std::string der_id;
  std::string bus;          // feeder bus name, as in the OpenDSS model ("66")
  int phase = 1;            // 1, 2 or 3 (OpenDSS numbering)
  double rated_kw = 0;      // nameplate
  double available_kw = 0;  // what it could produce now, in [0, rated_kw]
  std::string area;         // per_area policy group; empty: the bus's zone
};

struct PlanOptions {
  FairnessPolicy policy = FairnessPolicy::kEqualRatio;
  double v_min_pu = 0.95;
  double v_max_pu = 1.05;
  double load_mult = 1.0;  // the feeder's loads now, times nominal
  double source_pu = -1;   // < 0: the feeder's
};

struct PvCap {
  std::string der_id, bus;
  int phase = 1;
  double available_kw = 0;
  double ratio = 0;   // alpha: the share of available curtailed
  double cap_kw = 0;  // (1 - ratio) * available_kw
  double cap_w = 0;   // the same in W, for opModGenLimW
  std::string why;    // "equal_ratio: 25.2 % of 40.0 kW; bus 66.3 1.0581 -> 1.0499 pu"
};

struct BusPhaseVoltage {
  std::string bus;
  int phase = 1;
  double before_pu = 0, after_pu = 0;
};

struct CurtailmentPlan {
  bool feasible = false;
  std::string reason;  // summary, or why no curtailment can meet the limits
  std::string policy;
  std::vector<PvCap> caps;  // agents' order
  double available_kw = 0, curtailed_kw = 0;
  double max_ratio = 0, min_ratio = 0, jain_index = 1;
  int iterations = 0;
  double max_before_pu = 0, max_after_pu = 0;
  std::vector<BusPhaseVoltage> voltages;  // every bus-phase, before and after
};

// `feeder` without PVs (its own are ignored). Errors (the request is bad,
// nothing is solved): no agents, a duplicate or empty der_id, a bus not on
// the feeder, a phase the bus does not have, available_kw outside
// [0, rated_kw], bad limits. Each names the agent and the field.
[[nodiscard]] StatusOr<CurtailmentPlan> PlanCurtailment(const FeederModel& feeder,
                                                        const std::vector<PvAgent>& agents,
                                                        const PlanOptions& options);

}  // namespace derms::feeder

#endif  // DERMS_FEEDER_CURTAILMENT_PLAN_H_
