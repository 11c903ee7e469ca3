#include "feeder/curtailment_plan.h"

#include <fmt/format.h>

#include <cmath>
#include <set>

#include "feeder/scenario.h"

namespace derms::feeder {

StatusOr<CurtailmentPlan> PlanCurtailment(const FeederModel& feeder,
                                          const std::vector<PvAgent>& agents,
                                          const PlanOptions& options) {
  if (agents.empty()) return Status::Error("invalid_argument", "curtailment: no PV agents");
  FeederModel model = feeder;
  model.pvs.clear();
  std::vector<std::string> zones = BusZones(model);
  std::set<std::string> ids;
  CurtailmentRequest req;
  req.policy = options.policy;
  req.v_min_pu = options.v_min_pu;
  req.v_max_pu = options.v_max_pu;
  req.load_mult = options.load_mult;
  req.source_pu = options.source_pu;
  for (const PvAgent& a : agents) {
    if (a.der_id.empty())
      return Status::Error("invalid_argument", "curtailment: a PV agent has no der_id");
    if (!ids.insert(a.der_id).second) {
      return Status::Error("invalid_argument",
                           fmt::format("curtailment: PV '{}' listed twice", a.der_id));
    }
    int bus = model.FindBus(a.bus);
    if (bus < 0) {
      return Status::Error("invalid_argument",
                           fmt::format("curtailment: PV '{}': bus '{}' is not on feeder '{}'",
                                       a.der_id, a.bus, model.name));
    }
    if (a.phase < 1 || a.phase > 3 || !model.buses[bus].phases[a.phase - 1]) {
      return Status::Error("invalid_argument",
                           fmt::format("curtailment: PV '{}': phase {} is not present at bus '{}'",
                                       a.der_id, a.phase, a.bus));
    }
    if (!std::isfinite(a.rated_kw) || a.rated_kw < 0 || !std::isfinite(a.available_kw) ||
        a.available_kw < 0 || a.available_kw > a.rated_kw * (1 + 1e-9)) {
      return Status::Error("invalid_argument",
                           fmt::format("curtailment: PV '{}': available_kw {} must be in [0, "
                                       "rated_kw {}]",
                                       a.der_id, a.available_kw, a.rated_kw));
    }
    Pv pv;
    pv.id = a.der_id;
    pv.bus = bus;
    pv.phase = a.phase - 1;
    pv.rated_kw = a.rated_kw;
    pv.area = a.area.empty() ? zones[bus] : a.area;
    model.pvs.push_back(pv);
    req.available_kw.push_back(a.available_kw);
  }
  auto r = Curtail(model, req);
  if (!r.ok()) return r.status();
  CurtailmentPlan plan;
  plan.feasible = r->feasible;
  plan.reason = r->reason;
  plan.policy = PolicyName(options.policy);
  plan.available_kw = r->available_kw;
  plan.curtailed_kw = r->curtailed_kw;
  plan.max_ratio = r->max_ratio;
  plan.min_ratio = r->min_ratio;
  plan.jain_index = r->jain_index;
  plan.iterations = r->iterations;
  plan.max_before_pu = r->max_before.v_pu;
  plan.max_after_pu = r->max_after.v_pu;
  for (size_t k = 0; k < agents.size(); ++k) {
    const Pv& pv = model.pvs[k];
    PvCap c;
    c.der_id = pv.id;
    c.bus = model.buses[pv.bus].name;
    c.phase = pv.phase + 1;
    c.available_kw = req.available_kw[k];
    c.ratio = r->ratio[k];
    c.cap_kw = r->cap_kw[k];
    c.cap_w = c.cap_kw * 1000.0;
    double vb = r->before.Magnitude(pv.bus, pv.phase), va = r->after.Magnitude(pv.bus, pv.phase);
    if (!r->feasible) {
      c.why = "not curtailed: " + r->reason;
    } else if (c.ratio <= 0) {
      c.why = fmt::format("{}: not curtailed; bus {}.{} {:.4f} -> {:.4f} pu", plan.policy, c.bus,
                          c.phase, vb, va);
    } else {
      c.why = fmt::format("{}: {:.1f} % of {:.1f} kW; bus {}.{} {:.4f} -> {:.4f} pu", plan.policy,
                          c.ratio * 100, c.available_kw, c.bus, c.phase, vb, va);
    }
    plan.caps.push_back(c);
  }
  for (size_t b = 0; b < model.buses.size(); ++b)
    for (int p = 0; p < 3; ++p)
      if (model.buses[b].phases[p]) {
        plan.voltages.push_back({model.buses[b].name, p + 1,
                                 r->before.Magnitude(static_cast<int>(b), p),
                                 r->after.Magnitude(static_cast<int>(b), p)});
      }
  return plan;
}

}  // namespace derms::feeder
