// Unbalanced three-phase power flow on a radial feeder: backward/forward
// sweep over the tree with the full phase impedance matrices, line charging,
// wye and delta loads (constant P, Z or |I|), capacitors (constant Z),
// regulator taps (ideal) and PV injections (unity power factor).
// Pure function of its inputs; safe to call from any thread.
#ifndef DERMS_FEEDER_POWER_FLOW_H_
#define DERMS_FEEDER_POWER_FLOW_H_

#include <array>
#include <string>
#include <vector>

#include "common/status.h"
#include "feeder/feeder_model.h"

namespace derms::feeder {

struct PowerFlowOptions {
  double load_mult = 1.0;      // every load's nominal kW and kvar times this
  double source_pu = -1;       // < 0: the model's source_pu
  double tolerance_pu = 1e-9;  // stop when no voltage moves more than this
  int max_iterations = 100;
};

struct PowerFlowResult {
  // voltage[bus][phase], pu of the bus's line-to-neutral base; 0 where the
  // phase is absent.
  std::vector<std::array<Complex, 3>> voltage;
  int iterations = 0;
  double source_kw = 0, source_kvar = 0;  // into the feeder, all phases

  double Magnitude(int bus, int phase) const { return std::abs(voltage[bus][phase]); }
  double AngleDeg(int bus, int phase) const;
  // Largest and smallest |V| over present phases, with where.
  struct Extreme {
    double v_pu = 0;
    int bus = -1, phase = -1;
  };
  Extreme Max(const FeederModel& model) const;
  Extreme Min(const FeederModel& model) const;
};

// Solves the feeder with every PV's output `pv_kw[k]` (model.pvs[k], kW at
// unity power factor; empty: no PV). Error when it does not converge or a
// voltage collapses.
[[nodiscard]] StatusOr<PowerFlowResult> SolvePowerFlow(const FeederModel& model,
                                                       const std::vector<double>& pv_kw,
                                                       const PowerFlowOptions& options = {});

}  // namespace derms::feeder

#endif  // DERMS_FEEDER_POWER_FLOW_H_
