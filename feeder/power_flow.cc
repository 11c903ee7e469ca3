#include "feeder/power_flow.h"

#include <fmt/format.h>

#include <cmath>

namespace derms::feeder {
namespace {

constexpr double kPi = 3.14159265358979323846;

Complex Polar(double mag, double deg) { return std::polar(mag, deg * kPi / 180.0); }

}  // namespace

double PowerFlowResult::AngleDeg(int bus, int phase) const {
  return std::arg(voltage[bus][phase]) * 180.0 / kPi;
}

PowerFlowResult::Extreme PowerFlowResult::Max(const FeederModel& model) const {
  Extreme e;
  e.v_pu = -1;
  for (size_t b = 0; b < model.buses.size(); ++b)
    for (int p = 0; p < 3; ++p)
      if (model.buses[b].phases[p] && Magnitude(static_cast<int>(b), p) > e.v_pu) {
        e = {Magnitude(static_cast<int>(b), p), static_cast<int>(b), p};
      }
  return e;
}

PowerFlowResult::Extreme PowerFlowResult::Min(const FeederModel& model) const {
  Extreme e;
  e.v_pu = 1e9;
  for (size_t b = 0; b < model.buses.size(); ++b)
    for (int p = 0; p < 3; ++p)
      if (model.buses[b].phases[p] && Magnitude(static_cast<int>(b), p) < e.v_pu) {
        e = {Magnitude(static_cast<int>(b), p), static_cast<int>(b), p};
      }
  return e;
}

StatusOr<PowerFlowResult> SolvePowerFlow(const FeederModel& model, const std::vector<double>& pv_kw,
                                         const PowerFlowOptions& options) {
  const size_t nb = model.buses.size();
  if (!pv_kw.empty() && pv_kw.size() != model.pvs.size()) {
    return Status::Error("invalid_argument", fmt::format("power flow: {} PV output(s) for {} PV(s)",
                                                         pv_kw.size(), model.pvs.size()));
  }
  const double source = options.source_pu >= 0 ? options.source_pu : model.source_pu;
  PowerFlowResult r;
  r.voltage.assign(nb, {Complex(0), Complex(0), Complex(0)});
  // Flat start: the source voltage carried down through the regulators.
  for (int p = 0; p < 3; ++p) r.voltage[0][p] = Polar(source, -120.0 * p);
  for (const Branch& br : model.branches) {
    for (int p = 0; p < 3; ++p) {
      if (!br.phases[p]) continue;
      double ratio = br.kind == BranchKind::kRegulator ? br.Ratio(p) : 1.0;
      r.voltage[br.to_bus][p] = r.voltage[br.from_bus][p] * ratio;
    }
  }
  std::vector<std::array<Complex, 3>> inject(nb);  // current drawn at each bus
  std::vector<std::array<Complex, 3>> branch_i(model.branches.size());
  for (int it = 1; it <= options.max_iterations; ++it) {
    // Backward: currents drawn by loads, capacitors, line charging and PV.
    for (auto& a : inject) a = {Complex(0), Complex(0), Complex(0)};
    for (const LoadPart& l : model.loads) {
      const auto& v = r.voltage[l.bus];
      Complex s0 = Complex(l.kw, l.kvar) * options.load_mult / kPerPhaseBaseKva;
      Complex vl = l.connection == Connection::kWye ? v[l.phase] : v[l.phase] - v[l.phase2];
      double vm = std::abs(vl);
      if (vm < 1e-6) return Status::Error("power_flow", "voltage collapsed at a load");
      Complex s = s0;
      if (l.model == LoadModel::kConstantImpedance) s = s0 * (vm * vm) / (l.rated_pu * l.rated_pu);
      if (l.model == LoadModel::kConstantCurrent) s = s0 * vm / l.rated_pu;
      Complex i = std::conj(s / vl);
      inject[l.bus][l.phase] += i;
      if (l.connection == Connection::kDelta) inject[l.bus][l.phase2] -= i;
    }
    for (const Capacitor& c : model.capacitors) {
      // Constant susceptance: Q at rated voltage.
      double b = c.kvar / kPerPhaseBaseKva / (c.rated_pu * c.rated_pu);
      inject[c.bus][c.phase] += Complex(0, b) * r.voltage[c.bus][c.phase];  // leads: supplies vars
    }
    if (!pv_kw.empty()) {
      for (size_t k = 0; k < model.pvs.size(); ++k) {
        const Pv& pv = model.pvs[k];
        Complex v = r.voltage[pv.bus][pv.phase];
        Complex s(-pv_kw[k] / kPerPhaseBaseKva, 0);  // generation: negative load
        inject[pv.bus][pv.phase] += std::conj(s / v);
      }
    }
    for (const Branch& br : model.branches) {
      if (br.kind != BranchKind::kLine) continue;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          if (!br.phases[i] || !br.phases[j]) continue;
          inject[br.from_bus][i] += br.y_half_pu[i][j] * r.voltage[br.from_bus][j];
          inject[br.to_bus][i] += br.y_half_pu[i][j] * r.voltage[br.to_bus][j];
        }
    }
    for (size_t k = model.branches.size(); k-- > 0;) {
      const Branch& br = model.branches[k];
      auto& ib = branch_i[k];
      ib = inject[br.to_bus];
      // Children's currents were added to inject[to_bus] already (below).
      std::array<Complex, 3> up{};
      for (int p = 0; p < 3; ++p) {
        if (!br.phases[p]) {
          ib[p] = 0;
          continue;
        }
        up[p] = br.kind == BranchKind::kRegulator ? ib[p] * br.Ratio(p) : ib[p];
      }
      for (int p = 0; p < 3; ++p) inject[br.from_bus][p] += up[p];
    }
    // Forward: voltages from the source down.
    double max_change = 0;
    for (size_t k = 0; k < model.branches.size(); ++k) {
      const Branch& br = model.branches[k];
      const auto& vf = r.voltage[br.from_bus];
      auto& vt = r.voltage[br.to_bus];
      for (int p = 0; p < 3; ++p) {
        if (!br.phases[p]) continue;
        Complex v;
        if (br.kind == BranchKind::kRegulator) {
          v = vf[p] * br.Ratio(p);
        } else {
          v = vf[p];
          for (int q = 0; q < 3; ++q) {
            if (br.phases[q]) v -= br.z_pu[p][q] * branch_i[k][q];
          }
        }
        max_change = std::max(max_change, std::abs(v - vt[p]));
        vt[p] = v;
      }
    }
    r.iterations = it;
    if (!std::isfinite(max_change)) return Status::Error("power_flow", "power flow diverged");
    if (max_change < options.tolerance_pu) {
      Complex s(0);
      for (int p = 0; p < 3; ++p) s += r.voltage[0][p] * std::conj(inject[0][p]);
      r.source_kw = s.real() * kPerPhaseBaseKva;
      r.source_kvar = s.imag() * kPerPhaseBaseKva;
      return r;
    }
  }
  return Status::Error("power_flow", fmt::format("power flow did not converge in {} iterations",
                                                 options.max_iterations));
}

}  // namespace derms::feeder
