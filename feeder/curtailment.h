// Fair PV curtailment against over-voltage: the public face of the feeder
// solver, for dermsctl and for an aggregator module.
//
// Input: a feeder (FeederModel with its PVs), each PV's available kW now, a
// fairness policy and voltage limits. Output: each PV's curtailment ratio
// alpha (it may produce (1 - alpha) * available, its generation cap) and
// the nonlinear power flow's voltages before and after. The answer is found
// with the three-phase LinDistFlow model (lindistflow.h) as a linear program
// solved by GLPK, and checked by the power flow (power_flow.h): the linear
// model is anchored on the power flow's voltages without curtailment, and
// wherever the power flow still finds a voltage above the limit, the model
// is corrected by the difference at that answer and solved again. An answer
// is only returned feasible when the power flow says every voltage is within
// the limits; otherwise `feasible` is false and `reason` says why.
//
// Pure function of its inputs; safe to call from any thread (GLPK's
// terminal output is switched off for the call).
#ifndef DERMS_FEEDER_CURTAILMENT_H_
#define DERMS_FEEDER_CURTAILMENT_H_

#include <string>
#include <vector>

#include "common/status.h"
#include "feeder/feeder_model.h"
#include "feeder/lindistflow.h"
#include "feeder/power_flow.h"

namespace derms::feeder {

enum class FairnessPolicy {
  kEqualRatio,  // one curtailment ratio for every PV (GridAPPS-D DEC "prop")
  kPerArea,     // one ratio per area (Pv::area), areas free to differ; least total
  kEqualKw,     // the same kW from every PV (DEC "ekw")
  kMinTotal,    // least total curtailment, no fairness (for comparison)
};

// "equal_ratio", "per_area", "equal_kw", "min_total".
const char* PolicyName(FairnessPolicy policy);
[[nodiscard]] StatusOr<FairnessPolicy> ParsePolicy(const std::string& name);

struct CurtailmentRequest {
  FairnessPolicy policy = FairnessPolicy::kEqualRatio;
  std::vector<double> available_kw;  // per model.pvs, >= 0
  double v_min_pu = 0.95;
  double v_max_pu = 1.05;
  double load_mult = 1.0;   // loads at this times nominal
  double source_pu = -1;    // < 0: the model's
  int max_iterations = 10;  // linear solves, each checked by the power flow
  // The linear program aims this far inside the limits, so that the power
  // flow's answer lands inside rather than on them.
  double margin_pu = 1e-4;
};

struct CurtailmentResult {
  bool feasible = false;
  std::string reason;          // why not, when !feasible; else a summary
  std::vector<double> ratio;   // alpha per PV, in [0, 1]
  std::vector<double> cap_kw;  // (1 - alpha) * available per PV
  double available_kw = 0;     // sum over PVs
  double curtailed_kw = 0;     // sum of alpha * available
  double max_ratio = 0, min_ratio = 0;
  double jain_index = 1;       // of the ratios (1 when all equal, incl. none)
  int iterations = 0;          // linear solves (0: nothing to curtail)
  double lp_objective_kw = 0;  // the last linear program's objective
  // Per linear solve: the largest |V| difference between the (corrected)
  // linear model and the power flow at that solve's answer, pu.
  std::vector<double> model_error_pu;
  PowerFlowResult before;  // every PV at its available output
  PowerFlowResult after;   // at the caps (== before when none)
  PowerFlowResult::Extreme max_before, max_after, min_after;
};

// REQUIRES: nothing; bad input (sizes, NaN, limits out of order) is an error
// Status; an over-voltage no curtailment can clear is a result with
// feasible == false and the reason.
[[nodiscard]] StatusOr<CurtailmentResult> Curtail(const FeederModel& model,
                                                  const CurtailmentRequest& request);

// Jain's fairness index of `x`: (sum x)^2 / (n sum x^2); 1 for all zeros.
double JainIndex(const std::vector<double>& x);

// ---- the pieces, for benchmarks and tests

// The curtailment LP on `lm`: columns alpha (one per PV) first, then the
// branch flows P, the squared voltages v (bus >= 1), then the policy's
// shared ratio / kW columns; `offset_sq[bus][phase]` is added to the linear
// model's v (the power flow's correction). Objective: curtailed kW.
LinearProgram BuildCurtailmentLp(const FeederModel& model, const LinearModel& lm,
                                 const CurtailmentRequest& request,
                                 const std::vector<PhaseValues>& offset_sq);

struct LpSolution {
  bool feasible = false;
  double objective = 0;
  std::vector<double> x;
};
// GLPK's simplex. Error only when GLPK itself fails.
[[nodiscard]] StatusOr<LpSolution> SolveLp(const LinearProgram& lp);

}  // namespace derms::feeder

#endif  // DERMS_FEEDER_CURTAILMENT_H_
