#include "feeder/curtailment.h"

#include <fmt/format.h>
#include <glpk.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

namespace derms::feeder {
namespace {

struct LpDeleter {
  void operator()(glp_prob* lp) const { glp_delete_prob(lp); }
};

class QuietGlpk {
 public:
  QuietGlpk() : previous_(glp_term_out(GLP_OFF)) {}
  ~QuietGlpk() { glp_term_out(previous_); }

 private:
  int previous_;
};

std::string Where(const FeederModel& model, const PowerFlowResult::Extreme& e) {
  if (e.bus < 0) return "nowhere";
  return fmt::format("{:.4f} pu at bus {} phase {}", e.v_pu, model.buses[e.bus].name, e.phase + 1);
}

bool Within(const PowerFlowResult::Extreme& max, const PowerFlowResult::Extreme& min, double v_min,
            double v_max) {
  return max.v_pu <= v_max && min.v_pu >= v_min;
}

}  // namespace

const char* PolicyName(FairnessPolicy policy) {
  switch (policy) {
    case FairnessPolicy::kEqualRatio:
      return "equal_ratio";
    case FairnessPolicy::kPerArea:
      return "per_area";
    case FairnessPolicy::kEqualKw:
      return "equal_kw";
    case FairnessPolicy::kMinTotal:
      return "min_total";
  }
  return "?";
}

StatusOr<FairnessPolicy> ParsePolicy(const std::string& name) {
  for (FairnessPolicy p : {FairnessPolicy::kEqualRatio, FairnessPolicy::kPerArea,
                           FairnessPolicy::kEqualKw, FairnessPolicy::kMinTotal}) {
    if (name == PolicyName(p)) return p;
  }
  return Status::Error("invalid_argument",
                       fmt::format("policy '{}': must be one of equal_ratio, per_area, equal_kw, "
                                   "min_total",
                                   name));
}

double JainIndex(const std::vector<double>& x) {
  double sum = 0, sq = 0;
  for (double v : x) {
    sum += v;
    sq += v * v;
  }
  if (x.empty() || sq <= 0) return 1.0;
  return sum * sum / (static_cast<double>(x.size()) * sq);
}

LinearProgram BuildCurtailmentLp(const FeederModel& model, const LinearModel& lm,
                                 const CurtailmentRequest& request,
                                 const std::vector<PhaseValues>& offset_sq) {
  LinearProgram lp;
  const int npv = static_cast<int>(model.pvs.size());
  const size_t nb = model.buses.size();
  auto add_col = [&](double lo, double hi, double cost, bool basic = false) {
    lp.col_basic.push_back(basic);
    lp.col_lo.push_back(lo);
    lp.col_hi.push_back(hi);
    lp.c.push_back(cost);
    return lp.Cols() - 1;
  };
  auto add_row = [&](double lo, double hi) {
    lp.row_lo.push_back(lo);
    lp.row_hi.push_back(hi);
    return lp.Rows() - 1;
  };
  auto add = [&](int row, int col, double v) {
    lp.a_row.push_back(row);
    lp.a_col.push_back(col);
    lp.a_val.push_back(v);
  };
  // alpha: objective in kW curtailed.
  for (int k = 0; k < npv; ++k) add_col(0, 1, request.available_kw[k]);
  // Branch flows.
  std::vector<std::array<int, 3>> pcol(lm.rows.size(), {-1, -1, -1});
  for (size_t k = 0; k < lm.rows.size(); ++k)
    for (int p = 0; p < 3; ++p)
      if (lm.rows[k].phases[p]) {
        pcol[k][p] = add_col(-HUGE_VAL, HUGE_VAL, 0, true);
      }
  // Squared voltages, bounded by the limits less the power flow's correction.
  const double vmax = request.v_max_pu - request.margin_pu;
  const double vmin = request.v_min_pu + request.margin_pu;
  std::vector<std::array<int, 3>> vcol(nb, {-1, -1, -1});
  for (size_t b = 1; b < nb; ++b)
    for (int p = 0; p < 3; ++p)
      if (lm.bus_phases[b][p]) {
        double off = offset_sq.empty() ? 0 : offset_sq[b][p];
        vcol[b][p] = add_col(vmin * vmin - off, vmax * vmax - off, 0, true);
      }
  // PVs by bus and phase.
  std::vector<std::array<std::vector<int>, 3>> pv_at(nb);
  for (int k = 0; k < npv; ++k) pv_at[model.pvs[k].bus][model.pvs[k].phase].push_back(k);
  for (size_t k = 0; k < lm.rows.size(); ++k) {
    const auto& r = lm.rows[k];
    for (int p = 0; p < 3; ++p) {
      if (!r.phases[p]) continue;
      // Flow balance: P = load - sum avail (1 - alpha) + children.
      double rhs = lm.p_load[r.to_bus][p];
      for (int pv : pv_at[r.to_bus][p]) rhs -= request.available_kw[pv] / kPerPhaseBaseKva;
      int row = add_row(rhs, rhs);
      add(row, pcol[k][p], 1.0);
      for (int c : r.children)
        if (pcol[c][p] >= 0) add(row, pcol[c][p], -1.0);
      for (int pv : pv_at[r.to_bus][p]) add(row, pv, -request.available_kw[pv] / kPerPhaseBaseKva);
      // Voltage drop.
      if (r.regulator) {
        if (r.from_bus == 0) {
          double v = r.ratio_sq[p] * lm.v0_sq;
          row = add_row(v, v);
          add(row, vcol[r.to_bus][p], 1.0);
        } else {
          row = add_row(0, 0);
          add(row, vcol[r.to_bus][p], 1.0);
          add(row, vcol[r.from_bus][p], -r.ratio_sq[p]);
        }
        continue;
      }
      double rhs_v = 0;
      for (int q = 0; q < 3; ++q)
        if (r.phases[q]) rhs_v -= r.mq[p][q] * r.q_flow[q];
      if (r.from_bus == 0) rhs_v += lm.v0_sq;
      row = add_row(rhs_v, rhs_v);
      add(row, vcol[r.to_bus][p], 1.0);
      if (r.from_bus != 0) add(row, vcol[r.from_bus][p], -1.0);
      for (int q = 0; q < 3; ++q)
        if (r.phases[q] && r.mp[p][q] != 0) add(row, pcol[k][q], r.mp[p][q]);
    }
  }
  // Fairness.
  switch (request.policy) {
    case FairnessPolicy::kEqualRatio: {
      int a = add_col(0, 1, 0);
      for (int k = 0; k < npv; ++k) {
        int row = add_row(0, 0);
        add(row, k, 1.0);
        add(row, a, -1.0);
        lp.col_basic[k] = true;
      }
      break;
    }
    case FairnessPolicy::kPerArea: {
      std::map<std::string, int> area_col;
      for (int k = 0; k < npv; ++k) {
        const std::string& area = model.pvs[k].area;
        if (!area_col.count(area)) area_col[area] = add_col(0, 1, 0);
        int row = add_row(0, 0);
        add(row, k, 1.0);
        add(row, area_col[area], -1.0);
        lp.col_basic[k] = true;
      }
      break;
    }
    case FairnessPolicy::kEqualKw: {
      int c = add_col(0, HUGE_VAL, 0);
      for (int k = 0; k < npv; ++k) {
        if (request.available_kw[k] <= 0) continue;  // nothing to give
        int row = add_row(0, 0);
        add(row, k, request.available_kw[k]);
        add(row, c, -1.0);
        lp.col_basic[k] = true;
      }
      break;
    }
    case FairnessPolicy::kMinTotal:
      break;
  }
  return lp;
}

StatusOr<LpSolution> SolveLp(const LinearProgram& lp) {
  QuietGlpk quiet;
  std::unique_ptr<glp_prob, LpDeleter> p(glp_create_prob());
  glp_set_obj_dir(p.get(), GLP_MIN);
  if (lp.Rows() > 0) glp_add_rows(p.get(), lp.Rows());
  glp_add_cols(p.get(), lp.Cols());
  auto bounds = [](double lo, double hi) {
    bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
    if (has_lo && has_hi) return lo == hi ? GLP_FX : GLP_DB;
    if (has_lo) return GLP_LO;
    if (has_hi) return GLP_UP;
    return GLP_FR;
  };
  for (int i = 0; i < lp.Rows(); ++i) {
    double lo = lp.row_lo[i], hi = lp.row_hi[i];
    glp_set_row_bnds(p.get(), i + 1, bounds(lo, hi), std::isfinite(lo) ? lo : 0,
                     std::isfinite(hi) ? hi : 0);
  }
  for (int j = 0; j < lp.Cols(); ++j) {
    double lo = lp.col_lo[j], hi = lp.col_hi[j];
    int type = bounds(lo, hi);
    if (type == GLP_DB && lo > hi) {  // an empty range: infeasible by bounds
      LpSolution none;
      return none;
    }
    glp_set_col_bnds(p.get(), j + 1, type, std::isfinite(lo) ? lo : 0, std::isfinite(hi) ? hi : 0);
    glp_set_obj_coef(p.get(), j + 1, lp.c[j]);
  }
  std::vector<int> ia(1), ja(1);
  std::vector<double> ar(1);
  ia.insert(ia.end(), lp.a_row.begin(), lp.a_row.end());
  ja.insert(ja.end(), lp.a_col.begin(), lp.a_col.end());
  ar.insert(ar.end(), lp.a_val.begin(), lp.a_val.end());
  for (size_t i = 1; i < ia.size(); ++i) {
    ++ia[i];
    ++ja[i];
  }
  glp_load_matrix(p.get(), static_cast<int>(ar.size()) - 1, ia.data(), ja.data(), ar.data());
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  int basic = 0;
  for (bool b : lp.col_basic) basic += b;
  if (!lp.col_basic.empty() && basic == lp.Rows()) {
    // The tree's basis: flows and voltages basic, curtailment at zero. It is
    // dual feasible (curtailing costs kW), so the dual simplex starts there
    // and pivots only on the PVs it curtails.
    for (int i = 0; i < lp.Rows(); ++i) {
      glp_set_row_stat(p.get(), i + 1, lp.row_lo[i] == lp.row_hi[i] ? GLP_NS : GLP_NL);
    }
    for (int j = 0; j < lp.Cols(); ++j) {
      int stat = GLP_BS;
      if (!lp.col_basic[j]) {
        stat =
            !std::isfinite(lp.col_lo[j]) ? (std::isfinite(lp.col_hi[j]) ? GLP_NU : GLP_NF) : GLP_NL;
      }
      glp_set_col_stat(p.get(), j + 1, stat);
    }
    parm.meth = GLP_DUALP;
    if (glp_warm_up(p.get()) != 0) glp_std_basis(p.get());  // singular: start from scratch
  } else {
    parm.presolve = GLP_ON;
  }
  int ret = glp_simplex(p.get(), &parm);
  LpSolution out;
  if (ret == GLP_ENOPFS || ret == GLP_ENODFS) return out;
  if (ret != 0) {
    return Status::Error("solver_error",
                         fmt::format("curtailment LP: glp_simplex returned {}", ret));
  }
  int status = glp_get_status(p.get());
  if (status != GLP_OPT) return out;
  out.feasible = true;
  out.objective = glp_get_obj_val(p.get());
  out.x.resize(lp.Cols());
  for (int j = 0; j < lp.Cols(); ++j) out.x[j] = glp_get_col_prim(p.get(), j + 1);
  return out;
}

StatusOr<CurtailmentResult> Curtail(const FeederModel& model, const CurtailmentRequest& request) {
  const size_t npv = model.pvs.size();
  if (request.available_kw.size() != npv) {
    return Status::Error("invalid_argument",
                         fmt::format("curtailment: {} available_kw value(s) for {} PV(s)",
                                     request.available_kw.size(), npv));
  }
  for (size_t k = 0; k < npv; ++k) {
    double a = request.available_kw[k];
    if (!std::isfinite(a) || a < 0) {
      return Status::Error("invalid_argument",
                           fmt::format("curtailment: PV '{}' available_kw {}: must be a finite "
                                       "number >= 0",
                                       model.pvs[k].id, a));
    }
  }
  if (!(request.v_min_pu > 0 && request.v_min_pu < request.v_max_pu && request.v_max_pu < 2)) {
    return Status::Error("invalid_argument",
                         fmt::format("curtailment: limits [{}, {}] pu: need 0 < v_min < v_max < 2",
                                     request.v_min_pu, request.v_max_pu));
  }
  if (!std::isfinite(request.load_mult) || request.load_mult < 0) {
    return Status::Error("invalid_argument", fmt::format("curtailment: load_mult {}: must be a "
                                                         "finite number >= 0",
                                                         request.load_mult));
  }
  if (request.max_iterations < 1) {
    return Status::Error("invalid_argument", "curtailment: max_iterations must be >= 1");
  }
  const double source = request.source_pu >= 0 ? request.source_pu : model.source_pu;
  PowerFlowOptions pf;
  pf.load_mult = request.load_mult;
  pf.source_pu = source;

  CurtailmentResult res;
  res.ratio.assign(npv, 0.0);
  res.cap_kw = request.available_kw;
  for (double a : request.available_kw) res.available_kw += a;
  auto before = SolvePowerFlow(model, request.available_kw, pf);
  if (!before.ok()) return before.status();
  res.before = *before;
  res.after = *before;
  res.max_before = res.before.Max(model);
  res.max_after = res.max_before;
  res.min_after = res.before.Min(model);
  if (Within(res.max_before, res.min_after, request.v_min_pu, request.v_max_pu)) {
    res.feasible = true;
    res.reason = fmt::format("no curtailment needed: highest {}", Where(model, res.max_before));
    return res;
  }
  if (res.min_after.v_pu < request.v_min_pu) {
    res.reason = fmt::format(
        "under-voltage {} below {} pu before any curtailment; curtailing PV "
        "only lowers voltages",
        Where(model, res.min_after), request.v_min_pu);
    return res;
  }

  LinearModel lm = BuildLinearModel(model, request.load_mult, source);
  // Anchor the linear model on the power flow without curtailment.
  auto correction = [&](const PowerFlowResult& flow, const std::vector<double>& pv_kw) {
    std::vector<PhaseValues> lin = lm.VoltageSquared(model, pv_kw);
    std::vector<PhaseValues> off(lin.size(), {0, 0, 0});
    for (size_t b = 0; b < lin.size(); ++b)
      for (int p = 0; p < 3; ++p)
        if (model.buses[b].phases[p]) off[b][p] = std::norm(flow.voltage[b][p]) - lin[b][p];
    return off;
  };
  std::vector<PhaseValues> offset = correction(res.before, request.available_kw);
  for (int it = 1; it <= request.max_iterations; ++it) {
    LinearProgram lp = BuildCurtailmentLp(model, lm, request, offset);
    auto sol = SolveLp(lp);
    if (!sol.ok()) return sol.status();
    res.iterations = it;
    if (!sol->feasible) {
      std::vector<double> none(npv, 0.0);
      auto off = SolvePowerFlow(model, none, pf);
      if (off.ok() && off->Max(model).v_pu > request.v_max_pu) {
        res.reason = fmt::format(
            "infeasible: even with every PV fully curtailed the power flow "
            "gives {}, above the {} pu limit",
            Where(model, off->Max(model)), request.v_max_pu);
      } else if (off.ok() && off->Min(model).v_pu < request.v_min_pu) {
        res.reason = fmt::format(
            "infeasible: with every PV fully curtailed the power flow gives "
            "{}, below the {} pu limit",
            Where(model, off->Min(model)), request.v_min_pu);
      } else if (request.policy == FairnessPolicy::kEqualKw) {
        double smallest = HUGE_VAL;
        for (double a : request.available_kw)
          if (a > 0) smallest = std::min(smallest, a);
        res.reason = fmt::format(
            "infeasible under equal_kw: no equal kW from every PV (at most "
            "the smallest PV's {:.1f} kW) clears the over-voltage",
            smallest);
      } else {
        res.reason = fmt::format(
            "infeasible: the linear model finds no curtailment under {} "
            "that keeps voltages in [{}, {}] pu",
            PolicyName(request.policy), request.v_min_pu, request.v_max_pu);
      }
      return res;
    }
    res.lp_objective_kw = sol->objective;
    std::vector<double> ratio(npv), cap(npv);
    for (size_t k = 0; k < npv; ++k) {
      ratio[k] = std::clamp(sol->x[k], 0.0, 1.0);
      cap[k] = (1 - ratio[k]) * request.available_kw[k];
    }
    auto after = SolvePowerFlow(model, cap, pf);
    if (!after.ok()) return after.status();
    {
      std::vector<PhaseValues> lin = lm.VoltageSquared(model, cap);
      double worst = 0;
      for (size_t b = 0; b < lin.size(); ++b)
        for (int p = 0; p < 3; ++p)
          if (model.buses[b].phases[p]) {
            double v = std::sqrt(std::max(0.0, lin[b][p] + offset[b][p]));
            worst = std::max(worst, std::abs(v - after->Magnitude(static_cast<int>(b), p)));
          }
      res.model_error_pu.push_back(worst);
    }
    auto max_after = after->Max(model), min_after = after->Min(model);
    if (Within(max_after, min_after, request.v_min_pu, request.v_max_pu)) {
      res.feasible = true;
      res.ratio = ratio;
      res.cap_kw = cap;
      res.after = *after;
      res.max_after = max_after;
      res.min_after = min_after;
      res.curtailed_kw = 0;
      for (size_t k = 0; k < npv; ++k) res.curtailed_kw += ratio[k] * request.available_kw[k];
      std::vector<double> with_pv;
      for (size_t k = 0; k < npv; ++k)
        if (request.available_kw[k] > 0) with_pv.push_back(ratio[k]);
      res.max_ratio = with_pv.empty() ? 0 : *std::max_element(with_pv.begin(), with_pv.end());
      res.min_ratio = with_pv.empty() ? 0 : *std::min_element(with_pv.begin(), with_pv.end());
      res.jain_index = JainIndex(with_pv);
      res.reason = fmt::format(
          "{}: {:.1f} of {:.1f} kW curtailed; highest {} (was {}); {} "
          "iteration(s)",
          PolicyName(request.policy), res.curtailed_kw, res.available_kw, Where(model, max_after),
          Where(model, res.max_before), it);
      return res;
    }
    // The power flow disagrees: correct the model at this answer, solve again.
    std::vector<PhaseValues> at = correction(*after, cap);
    for (size_t b = 0; b < at.size(); ++b)
      for (int p = 0; p < 3; ++p) offset[b][p] = at[b][p];
  }
  res.reason = fmt::format("no answer the power flow accepts after {} correction(s) under {}",
                           request.max_iterations, PolicyName(request.policy));
  return res;
}

}  // namespace derms::feeder
