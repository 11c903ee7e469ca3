#include "feeder/lindistflow.h"

#include <cmath>

namespace derms::feeder {
namespace {

constexpr double kPi = 3.14159265358979323846;

Complex Nominal(int phase) { return std::polar(1.0, -2.0 * kPi / 3.0 * phase); }

}  // namespace

LinearModel BuildLinearModel(const FeederModel& model, double load_mult, double source_pu) {
  LinearModel lm;
  const size_t nb = model.buses.size();
  lm.v0_sq = source_pu * source_pu;
  lm.p_load.assign(nb, {0, 0, 0});
  lm.q_load.assign(nb, {0, 0, 0});
  for (const Bus& b : model.buses) lm.bus_phases.push_back(b.phases);
  for (const LoadPart& l : model.loads) {
    Complex s = Complex(l.kw, l.kvar) * load_mult / kPerPhaseBaseKva;
    if (l.connection == Connection::kWye) {
      lm.p_load[l.bus][l.phase] += s.real();
      lm.q_load[l.bus][l.phase] += s.imag();
    } else {
      // S_1 = V_1 conj(I_12) = S V_1 / (V_1 - V_2) at nominal voltages.
      Complex v1 = Nominal(l.phase), v2 = Nominal(l.phase2);
      Complex s1 = s * v1 / (v1 - v2), s2 = s - s1;
      lm.p_load[l.bus][l.phase] += s1.real();
      lm.q_load[l.bus][l.phase] += s1.imag();
      lm.p_load[l.bus][l.phase2] += s2.real();
      lm.q_load[l.bus][l.phase2] += s2.imag();
    }
  }
  for (const Capacitor& c : model.capacitors) {
    lm.q_load[c.bus][c.phase] -= c.kvar / kPerPhaseBaseKva / (c.rated_pu * c.rated_pu);
  }
  lm.rows.resize(model.branches.size());
  std::vector<int> parent_row(nb, -1);
  for (size_t k = 0; k < model.branches.size(); ++k) {
    const Branch& br = model.branches[k];
    LinearModel::Row& row = lm.rows[k];
    row.from_bus = br.from_bus;
    row.to_bus = br.to_bus;
    row.phases = br.phases;
    row.regulator = br.kind == BranchKind::kRegulator;
    for (int p = 0; p < 3; ++p) {
      if (row.regulator) row.ratio_sq[p] = br.Ratio(p) * br.Ratio(p);
      for (int q = 0; q < 3; ++q) {
        if (!br.phases[p] || !br.phases[q]) continue;
        Complex g = Nominal(p) / Nominal(q);
        Complex w = std::conj(br.z_pu[p][q]) * g;
        row.mp[p][q] = 2 * w.real();
        row.mq[p][q] = -2 * w.imag();
      }
    }
    parent_row[br.to_bus] = static_cast<int>(k);
    if (parent_row[br.from_bus] >= 0)
      lm.rows[parent_row[br.from_bus]].children.push_back(static_cast<int>(k));
  }
  // Constant reactive flows: downstream sums.
  for (size_t k = lm.rows.size(); k-- > 0;) {
    LinearModel::Row& row = lm.rows[k];
    for (int p = 0; p < 3; ++p) {
      if (!row.phases[p]) continue;
      row.q_flow[p] = lm.q_load[row.to_bus][p];
      for (int c : row.children) row.q_flow[p] += lm.rows[c].q_flow[p];
    }
  }
  return lm;
}

std::vector<PhaseValues> LinearModel::VoltageSquared(const FeederModel& model,
                                                     const std::vector<double>& pv_kw) const {
  const size_t nb = p_load.size();
  std::vector<PhaseValues> net = p_load;
  for (size_t k = 0; k < pv_kw.size() && k < model.pvs.size(); ++k) {
    net[model.pvs[k].bus][model.pvs[k].phase] -= pv_kw[k] / kPerPhaseBaseKva;
  }
  std::vector<PhaseValues> flow(rows.size(), {0, 0, 0});
  for (size_t k = rows.size(); k-- > 0;) {
    for (int p = 0; p < 3; ++p) {
      if (!rows[k].phases[p]) continue;
      flow[k][p] = net[rows[k].to_bus][p];
      for (int c : rows[k].children) flow[k][p] += flow[c][p];
    }
  }
  std::vector<PhaseValues> v(nb, {0, 0, 0});
  for (int p = 0; p < 3; ++p) v[0][p] = v0_sq;
  for (size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    for (int p = 0; p < 3; ++p) {
      if (!r.phases[p]) continue;
      if (r.regulator) {
        v[r.to_bus][p] = r.ratio_sq[p] * v[r.from_bus][p];
        continue;
      }
      double drop = 0;
      for (int q = 0; q < 3; ++q) {
        if (r.phases[q]) drop += r.mp[p][q] * flow[k][q] + r.mq[p][q] * r.q_flow[q];
      }
      v[r.to_bus][p] = v[r.from_bus][p] - drop;
    }
  }
  return v;
}

}  // namespace derms::feeder
