// The three-phase linearised branch-flow model (LinDistFlow with the mutual-
// phase terms, squared voltage magnitudes as the variables) of a radial
// feeder, and the curtailment linear program built on it.
//
// For a line i -> j with phase impedance matrix Z and per-phase flows
// S = P + jQ, assuming nearly balanced voltages (V^a/V^b = e^{j120} ...):
//   v_j = v_i - M_P P - M_Q Q,  M_P = 2 Re(conj(Z) o G),  M_Q = -2 Im(conj(Z) o G)
// with G[p][q] = e^{j(theta_p - theta_q)}, theta = 0, -120, +120 degrees.
// Losses are neglected (flows are sums of downstream injections); a
// regulator multiplies v by its squared ratio. Loads are constant power at
// nominal voltage, delta loads split over their two phases, capacitors at
// rated voltage.
#ifndef DERMS_FEEDER_LINDISTFLOW_H_
#define DERMS_FEEDER_LINDISTFLOW_H_

#include <array>
#include <string>
#include <vector>

#include "feeder/feeder_model.h"

namespace derms::feeder {

using PhaseValues = std::array<double, 3>;

struct LinearModel {
  struct Row {
    int from_bus = -1, to_bus = -1;
    bool regulator = false;
    PhaseSet phases{};
    PhaseValues ratio_sq{1, 1, 1};  // regulators: squared ratio per phase
    double mp[3][3] = {};           // pu
    double mq[3][3] = {};
    PhaseValues q_flow{};       // constant reactive flow, pu
    std::vector<int> children;  // rows whose from_bus is this to_bus
  };
  std::vector<Row> rows;            // model.branches' order
  std::vector<PhaseValues> p_load;  // fixed active demand per bus and phase, pu
  std::vector<PhaseValues> q_load;  // fixed reactive demand (capacitors negative), pu
  std::vector<PhaseSet> bus_phases;
  double v0_sq = 1.0;  // source |V|^2

  // |V|^2 per bus and phase with PV outputs `pv_kw` (model.pvs order).
  std::vector<PhaseValues> VoltageSquared(const FeederModel& model,
                                          const std::vector<double>& pv_kw) const;
};

// REQUIRES: model from ParseDssFile (branches in breadth-first order).
LinearModel BuildLinearModel(const FeederModel& model, double load_mult, double source_pu);

// A linear program in GLPK's shape (1-based nothing: plain 0-based arrays):
// minimise c.x subject to row_lo <= A x <= row_hi, col_lo <= x <= col_hi.
struct LinearProgram {
  std::vector<double> c, col_lo, col_hi;
  std::vector<double> row_lo, row_hi;
  std::vector<int> a_row, a_col;  // sparse A, triplets
  std::vector<double> a_val;
  // Optional starting basis: these columns basic and every row nonbasic
  // (exactly Rows() of them). Given, the solver starts the dual simplex
  // there instead of from scratch.
  std::vector<bool> col_basic;
  int Cols() const { return static_cast<int>(c.size()); }
  int Rows() const { return static_cast<int>(row_lo.size()); }
};

}  // namespace derms::feeder

#endif  // DERMS_FEEDER_LINDISTFLOW_H_
