#include "cloud_aggregator/scheduling/charging_optimizer.h"

#include <fmt/format.h>
#include <glpk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace derms::scheduling {
namespace {

constexpr double kMsPerHour = 3.6e6;
constexpr double kKwhPerMwh = 1000;
// Energy differences below this fraction of the request are rounding, not
// energy left behind: without it a schedule that stores 39.999999999999993 of
// 40 kWh would report a shortfall and a reason.
constexpr double kRelTol = 1e-9;

// ---- Validation ----

Status Invalid(std::string_view who, const std::string& rule) {
  return Status::Error("invalid_field", fmt::format("{}: {}", who, rule));
}

Status Positive(std::string_view who, std::string_view field, double v) {
  if (!std::isfinite(v)) return Invalid(who, fmt::format("{} {} is not a finite number", field, v));
  if (v <= 0) return Invalid(who, fmt::format("{} {} must be > 0", field, v));
  return Status::Ok();
}

// Ok, or `field` `v` "must be in (0, max]" (NaN and infinities are not).
Status PositiveUpTo(std::string_view who, std::string_view field, double v, double max,
                    std::string_view why) {
  if (Status s = Positive(who, field, v); !s.ok()) return s;
  if (v > max) return Invalid(who, fmt::format("{} {} outside (0, {}]: {}", field, v, max, why));
  return Status::Ok();
}

Status ValidateNamed(const ChargeNeed& need, std::string_view who) {
  if (Status s = PositiveUpTo(who, "max_charge_kw", need.max_charge_kw, kMaxChargeKw,
                              "more than any one charging site draws");
      !s.ok()) {
    return s;
  }
  if (Status s = PositiveUpTo(who, "energy_kwh", need.energy_kwh, kMaxEnergyKwh,
                              "more than any one device stores");
      !s.ok()) {
    return s;
  }
  // Between the years 2000 and 10000, so time arithmetic cannot overflow,
  // and a window of at most 31 days (a month of 5-minute prices).
  constexpr int64_t kYear2000Ms = 946684800000LL;
  constexpr int64_t kYear10000Ms = 253402300800000LL;
  constexpr int64_t kMaxWindowMs = 31LL * 86400 * 1000;
  for (auto [field, ms] :
       {std::pair<const char*, int64_t>{"earliest_start_ms", need.earliest_start_ms},
        {"ready_by_ms", need.ready_by_ms}}) {
    if (ms < kYear2000Ms || ms >= kYear10000Ms) {
      return Invalid(who, fmt::format("{} {} outside the years 2000 to 9999", field, ms));
    }
  }
  if (need.ready_by_ms <= need.earliest_start_ms) {
    return Invalid(who, fmt::format("ready_by_ms {} must be after earliest_start_ms {}",
                                    need.ready_by_ms, need.earliest_start_ms));
  }
  if (need.ready_by_ms - need.earliest_start_ms > kMaxWindowMs) {
    return Invalid(who, fmt::format("window from earliest_start_ms to ready_by_ms is longer than "
                                    "31 days"));
  }
  if (need.soc_pct &&
      !(std::isfinite(*need.soc_pct) && *need.soc_pct >= 0 && *need.soc_pct <= 100)) {
    return Invalid(who, fmt::format("soc_pct {} outside [0, 100]", *need.soc_pct));
  }
  if (need.capacity_kwh) {
    if (Status s = PositiveUpTo(who, "capacity_kwh", *need.capacity_kwh, kMaxEnergyKwh,
                                "more than any one device stores");
        !s.ok()) {
      return s;
    }
  }
  if (!(std::isfinite(need.efficiency) && need.efficiency >= kMinEfficiency &&
        need.efficiency <= 1)) {
    return Invalid(who, fmt::format("efficiency {} outside [{}, 1] (stored / drawn)",
                                    need.efficiency, kMinEfficiency));
  }
  if (need.undelivered_price_per_mwh) {
    const double p = *need.undelivered_price_per_mwh;
    if (!std::isfinite(p)) {
      return Invalid(who, fmt::format("undelivered_price_per_mwh {} is not a finite number", p));
    }
    if (std::abs(p) > kMaxAbsPricePerMwh) {
      return Invalid(who, fmt::format("undelivered_price_per_mwh {} outside [-{}, {}] (the "
                                      "bound on forecast prices)",
                                      p, kMaxAbsPricePerMwh, kMaxAbsPricePerMwh));
    }
  }
  return Status::Ok();
}

// ---- The problem shared by every solver ----

// What is to be stored: the request, capped at the room left when state of
// charge and capacity are both known.
struct Target {
  double asked_kwh = 0;
  double store_kwh = 0;            // <= asked_kwh
  std::optional<double> room_kwh;  // when soc and capacity are given
};

Target TargetOf(const ChargeNeed& need) {
  Target t;
  t.asked_kwh = need.energy_kwh;
  t.store_kwh = need.energy_kwh;
  if (need.soc_pct && need.capacity_kwh) {
    t.room_kwh = (100.0 - *need.soc_pct) / 100.0 * *need.capacity_kwh;
    t.store_kwh = std::min(t.store_kwh, *t.room_kwh);
  }
  return t;
}

// The price intervals clipped to the need's window, in time order, in
// `slots` (power 0), with their exact lengths in hours in `hours`: the
// window is clipped at millisecond resolution, duration_s is the whole
// seconds of it, and energy always comes from the exact length. If `spans`
// is given, each slot's interval in `prices` and exact end go there. Time of
// the window no interval covers gets no slot: nothing can be charged without
// a price. REQUIRES: `prices` in time order, not overlapping.
struct SlotSpan {
  uint32_t interval = 0;  // index in `prices`
  int64_t end_ms = 0;
};
void BuildSlots(const ChargeNeed& need, const std::vector<PriceInterval>& prices,
                std::vector<ScheduleSlot>* slots, std::vector<double>* hours,
                std::vector<SlotSpan>* spans = nullptr) {
  const int64_t from = need.earliest_start_ms;
  const int64_t to = need.ready_by_ms;
  auto end_of = [](const PriceInterval& p) { return p.start_ms + p.duration_s * 1000; };
  // Intervals are in time order, so their ends are too: skip the past by
  // bisection rather than a scan, which matters for a long forecast.
  auto it = std::partition_point(prices.begin(), prices.end(),
                                 [&](const PriceInterval& p) { return end_of(p) <= from; });
  const auto last = std::partition_point(it, prices.end(),
                                         [&](const PriceInterval& p) { return p.start_ms < to; });
  // Sized up front and written in place: pushing a temporary struct per
  // slot costs a store-forwarding stall each, the bulk of the closed form.
  const size_t most = static_cast<size_t>(last - it);
  slots->resize(most);
  hours->resize(most);
  if (spans) spans->resize(most);
  size_t n = 0;
  for (; it != last; ++it) {
    const int64_t lo = std::max(it->start_ms, from);
    const int64_t hi = std::min(end_of(*it), to);
    if (hi <= lo) continue;
    ScheduleSlot& slot = (*slots)[n];
    slot.start_ms = lo;
    slot.duration_s = (hi - lo) / 1000;
    slot.price_per_mwh = it->price_per_mwh;
    slot.power_kw = 0;
    (*hours)[n] = static_cast<double>(hi - lo) / kMsPerHour;
    if (spans) {
      (*spans)[n].interval = static_cast<uint32_t>(it - prices.begin());
      (*spans)[n].end_ms = hi;
    }
    ++n;
  }
  slots->resize(n);
  hours->resize(n);
  if (spans) spans->resize(n);
}

// Why a device stores less than the room it has left, beyond its own power
// and window: set by the shared optimiser.
struct SharedLimit {
  double import_limit_kw = 0;
};

// Fills in everything of `schedule` but its slots' times and prices from the
// grid energy drawn in each slot (`grid_kwh`, in slot order, each within
// [0, max_charge_kw * hours]): powers, totals, costs, the immediate-charging
// comparison and the reason for any shortfall. Every solver ends here, so
// their results are summed the same way and compare exactly.
void Finish(const ChargeNeed& need, const Target& target, const std::vector<double>& hours,
            const std::vector<double>& grid_kwh, const std::optional<SharedLimit>& shared,
            ChargingSchedule* schedule) {
  const double p_max = need.max_charge_kw;
  const double eff = need.efficiency;
  std::vector<ScheduleSlot>& slots = schedule->slots;
  double grid = 0, cost = 0, window_h = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    // Full slots are exactly at the limit, not an ulp above it; most slots
    // are idle and need no division.
    slots[i].power_kw = grid_kwh[i] > 0 ? std::min(p_max, grid_kwh[i] / hours[i]) : 0.0;
    grid += grid_kwh[i];
    cost += slots[i].price_per_mwh / kKwhPerMwh * grid_kwh[i];
    window_h += hours[i];
  }
  schedule->grid_energy_kwh = grid;
  schedule->energy_kwh = eff * grid;
  schedule->cost = cost;

  // Charging at full power from the start, as a plain charger would,
  // whatever the prices: until the target is stored or the window ends.
  double remaining = target.store_kwh / eff;
  double immediate = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    const double cap = p_max * hours[i];
    if (cap >= remaining) {
      immediate += slots[i].price_per_mwh / kKwhPerMwh * remaining;
      break;
    }
    immediate += slots[i].price_per_mwh / kKwhPerMwh * cap;
    remaining -= cap;
  }
  schedule->immediate_cost = immediate;

  const double tol = kRelTol * std::max(1.0, target.asked_kwh);
  double shortfall = target.asked_kwh - schedule->energy_kwh;
  if (shortfall <= tol) shortfall = 0;
  schedule->shortfall_kwh = shortfall;
  schedule->undelivered_cost = need.undelivered_price_per_mwh
                                   ? shortfall * *need.undelivered_price_per_mwh / kKwhPerMwh
                                   : 0.0;
  schedule->reason.clear();
  if (shortfall == 0) return;

  std::vector<std::string> why;
  if (target.store_kwh < target.asked_kwh - tol) {
    why.push_back(
        fmt::format("asks for {:.1f} kWh but only {:.1f} kWh fits (soc_pct {} of capacity_kwh {})",
                    target.asked_kwh, *target.room_kwh, *need.soc_pct, *need.capacity_kwh));
  }
  if (schedule->energy_kwh < target.store_kwh - tol) {
    const double most_kwh = eff * p_max * window_h;
    if (schedule->energy_kwh >= most_kwh - tol) {
      std::string reason = fmt::format(
          "needs {:.1f} kWh but {:.1f} h at {:.1f} kW stores at most {:.1f} kWh by "
          "ready_by",
          target.store_kwh, window_h, p_max, most_kwh);
      const double asked_h =
          static_cast<double>(need.ready_by_ms - need.earliest_start_ms) / kMsPerHour;
      // PriceBook::Window narrows a window to whole seconds, so a second or
      // two without prices is normal and not worth a word.
      if (window_h < asked_h - 1.0 / 60) {
        reason += fmt::format(" (prices cover {:.2f} h of the {:.2f} h window)", window_h, asked_h);
      }
      why.push_back(std::move(reason));
    } else if (shared && need.undelivered_price_per_mwh) {
      why.push_back(fmt::format(
          "stores {:.1f} of {:.1f} kWh: more would exceed the shared import limit of {} kW or "
          "cost more than undelivered_price_per_mwh {} per MWh stored",
          schedule->energy_kwh, target.store_kwh, shared->import_limit_kw,
          *need.undelivered_price_per_mwh));
    } else if (shared) {
      why.push_back(fmt::format(
          "stores {:.1f} of {:.1f} kWh: the shared import limit of {} kW leaves no more",
          schedule->energy_kwh, target.store_kwh, shared->import_limit_kw));
    } else {
      why.push_back(fmt::format(
          "stores {:.1f} of {:.1f} kWh: charging more costs more than undelivered_price_per_mwh {} "
          "per MWh stored",
          schedule->energy_kwh, target.store_kwh, need.undelivered_price_per_mwh.value_or(0)));
    }
  }
  for (size_t i = 0; i < why.size(); ++i) {
    if (i > 0) schedule->reason += "; ";
    schedule->reason += why[i];
  }
}

// ---- The closed form ----

// A slot in the order the closed form fills them: by price, ties to the
// earlier slot. A strict total order, so the schedule is the same however
// the order is found, and the same every run.
struct Key {
  double price_per_mwh;
  uint32_t slot;
  double cap_kwh;  // grid energy at full power
  bool operator<(const Key& o) const {
    return price_per_mwh < o.price_per_mwh || (price_per_mwh == o.price_per_mwh && slot < o.slot);
  }
};

// Sets grid_kwh for `need_kwh` drawn in Key order: every slot before the
// marginal one at full power, the marginal one in part, the rest nothing.
// A weighted quickselect rather than a sort: expected linear time, where a
// week of 5-minute prices is 2,016 slots and a charge needs a few of them.
// Falls back to sorting what is left should the pivots keep missing.
void FillCheapest(double need_kwh, std::vector<Key>* keys, std::vector<double>* grid_kwh) {
  if (need_kwh <= 0) return;
  auto& k = *keys;
  size_t lo = 0, hi = k.size();  // the marginal slot is in [lo, hi); [0, lo) are full
  double remaining = need_kwh;   // to draw from [lo, hi)
  size_t marginal = k.size();
  int rounds_left = 8;
  for (size_t m = k.size(); m > 0; m >>= 1) rounds_left += 2;
  auto full = [&](size_t end) {
    for (size_t i = 0; i < end; ++i) (*grid_kwh)[k[i].slot] = k[i].cap_kwh;
  };
  while (lo < hi) {
    if (--rounds_left < 0) {
      std::sort(k.begin() + lo, k.begin() + hi);
      size_t i = lo;
      for (; i < hi && k[i].cap_kwh < remaining; ++i) remaining -= k[i].cap_kwh;
      full(i);
      if (i < hi) (*grid_kwh)[k[i].slot] = remaining;
      return;
    }
    const Key& a = k[lo];
    const Key& b = k[lo + (hi - lo) / 2];
    const Key& c = k[hi - 1];
    const Key pivot = (a < b) ? ((b < c) ? b : (a < c ? c : a)) : ((a < c) ? a : (b < c ? c : b));
    const auto mid =
        std::partition(k.begin() + lo, k.begin() + hi, [&](const Key& x) { return x < pivot; });
    double below = 0;
    for (auto it = k.begin() + lo; it != mid; ++it) below += it->cap_kwh;
    if (below >= remaining) {
      hi = static_cast<size_t>(mid - k.begin());
      continue;
    }
    // The pivot is the least of the rest: put it first there.
    std::iter_swap(
        mid, std::find_if(mid, k.begin() + hi, [&](const Key& x) { return x.slot == pivot.slot; }));
    const size_t at = static_cast<size_t>(mid - k.begin());
    if (below + pivot.cap_kwh >= remaining) {
      marginal = at;
      remaining -= below;
      break;
    }
    remaining -= below + pivot.cap_kwh;
    lo = at + 1;
  }
  if (marginal == k.size()) {
    full(lo);  // rounding left a crumb beyond the last slot: all of them
    return;
  }
  full(marginal);
  (*grid_kwh)[k[marginal].slot] = remaining;
}

// ---- GLPK ----

struct LpDeleter {
  void operator()(glp_prob* lp) const { glp_delete_prob(lp); }
};
using LpPtr = std::unique_ptr<glp_prob, LpDeleter>;

// GLPK prints to the terminal by default; the setting is per thread, so put
// back what the caller had.
class QuietGlpk {
 public:
  QuietGlpk() : previous_(glp_term_out(GLP_OFF)) {}
  ~QuietGlpk() { glp_term_out(previous_); }
  QuietGlpk(const QuietGlpk&) = delete;
  QuietGlpk& operator=(const QuietGlpk&) = delete;

 private:
  int previous_;
};

std::string_view StatusName(int status) {
  switch (status) {
    case GLP_UNDEF:
      return "GLP_UNDEF (solution undefined)";
    case GLP_FEAS:
      return "GLP_FEAS (feasible, not proven optimal)";
    case GLP_INFEAS:
      return "GLP_INFEAS (infeasible)";
    case GLP_NOFEAS:
      return "GLP_NOFEAS (no feasible solution)";
    case GLP_OPT:
      return "GLP_OPT";
    case GLP_UNBND:
      return "GLP_UNBND (unbounded)";
  }
  return "unknown";
}

std::string_view SimplexErrorName(int ret) {
  switch (ret) {
    case GLP_EBADB:
      return "GLP_EBADB (invalid basis)";
    case GLP_ESING:
      return "GLP_ESING (singular basis)";
    case GLP_ECOND:
      return "GLP_ECOND (ill-conditioned basis)";
    case GLP_EBOUND:
      return "GLP_EBOUND (invalid bounds)";
    case GLP_EFAIL:
      return "GLP_EFAIL (solver failed)";
    case GLP_EITLIM:
      return "GLP_EITLIM (iteration limit)";
    case GLP_ETMLIM:
      return "GLP_ETMLIM (time limit)";
    case GLP_ENOPFS:
      return "GLP_ENOPFS (no primal feasible solution)";
    case GLP_ENODFS:
      return "GLP_ENODFS (no dual feasible solution)";
  }
  return "unknown";
}

// Runs the simplex with presolve; ok only for a proven optimum.
Status Simplex(glp_prob* lp, std::string_view what) {
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.presolve = GLP_ON;
  // Runs on the aggregator's processing thread: a bound, not a hang.
  parm.tm_lim = 10000;
  const int ret = glp_simplex(lp, &parm);
  if (ret != 0) {
    return Status::Error("solver_error", fmt::format("{}: glp_simplex returned {} {}", what, ret,
                                                     SimplexErrorName(ret)));
  }
  const int status = glp_get_status(lp);
  if (status != GLP_OPT) {
    return Status::Error("solver_error",
                         fmt::format("{}: GLPK status {} {}", what, status, StatusName(status)));
  }
  return Status::Ok();
}

// Bounds [0, ub] for a column; GLPK wants a fixed column when they meet.
void SetColumnUpTo(glp_prob* lp, int col, double ub) {
  if (ub > 0) {
    glp_set_col_bnds(lp, col, GLP_DB, 0.0, ub);
  } else {
    glp_set_col_bnds(lp, col, GLP_FX, 0.0, 0.0);
  }
}

// The price (per MWh stored) that stands in for "deliver whatever it costs"
// in a one-device LP: more than storing a MWh costs in any slot, so the
// solver leaves energy undelivered only when no slot can take it.
double MustDeliverPenalty(const std::vector<ScheduleSlot>& slots, double efficiency) {
  double most = 0;
  for (const ScheduleSlot& s : slots) most = std::max(most, std::abs(s.price_per_mwh));
  return 1e3 * (most / efficiency + 1);
}

}  // namespace

Status ValidateNeed(const ChargeNeed& need) { return ValidateNamed(need, "charge request"); }

Status ValidateNeedAt(const ChargeNeed& need, int64_t now_ms) {
  if (Status s = ValidateNeed(need); !s.ok()) return s;
  constexpr std::string_view who = "charge request";
  if (need.ready_by_ms <= now_ms) {
    return Invalid(who, fmt::format("ready_by_ms {} is not after now ({}): the window is over",
                                    need.ready_by_ms, now_ms));
  }
  if (need.earliest_start_ms > now_ms + kMaxLeadMs) {
    return Invalid(who, fmt::format("earliest_start_ms {} is more than {} days after now ({})",
                                    need.earliest_start_ms, kMaxLeadMs / 86400000, now_ms));
  }
  return Status::Ok();
}

Status ValidateImportLimit(double import_limit_kw) {
  return PositiveUpTo("shared charge request", "import_limit_kw", import_limit_kw,
                      kMaxImportLimitKw, "more than any one site or feeder imports");
}

ChargingSchedule OptimizeSingle(const ChargeNeed& need, const std::vector<PriceInterval>& prices) {
  ChargingSchedule schedule;
  std::vector<double> hours;
  BuildSlots(need, prices, &schedule.slots, &hours);
  const Target target = TargetOf(need);
  const size_t n = schedule.slots.size();
  const double p_max = need.max_charge_kw;
  const double eff = need.efficiency;
  std::vector<double> grid_kwh(n, 0.0);

  // The slots worth charging at all: every one, or with an undelivered price
  // only those where a stored MWh costs less than leaving it undelivered.
  std::vector<Key> keys(n);
  size_t eligible = 0;
  double eligible_kwh = 0;
  const std::optional<double>& undelivered = need.undelivered_price_per_mwh;
  for (size_t i = 0; i < n; ++i) {
    const double price = schedule.slots[i].price_per_mwh;
    if (undelivered && !(price / eff < *undelivered)) continue;
    Key& k = keys[eligible++];
    k.price_per_mwh = price;
    k.slot = static_cast<uint32_t>(i);
    k.cap_kwh = p_max * hours[i];
  }
  keys.resize(eligible);
  // Summed apart from the filter: together, the sum lived on the stack.
  for (const Key& k : keys) eligible_kwh += k.cap_kwh;

  // One equality constraint over box-bounded variables: the optimum fills
  // the slots in price order (a fractional knapsack).
  const double need_grid_kwh = target.store_kwh / eff;
  if (eligible_kwh <= need_grid_kwh) {
    for (const Key& k : keys) grid_kwh[k.slot] = k.cap_kwh;
  } else {
    FillCheapest(need_grid_kwh, &keys, &grid_kwh);
  }
  Finish(need, target, hours, grid_kwh, std::nullopt, &schedule);
  return schedule;
}

StatusOr<ChargingSchedule> SolveSingleWithLp(const ChargeNeed& need,
                                             const std::vector<PriceInterval>& prices) {
  if (Status s = ValidateNeed(need); !s.ok()) return s;
  ChargingSchedule schedule;
  std::vector<double> hours;
  BuildSlots(need, prices, &schedule.slots, &hours);
  const Target target = TargetOf(need);
  const int n = static_cast<int>(schedule.slots.size());
  const double eff = need.efficiency;
  const double undelivered_per_mwh =
      need.undelivered_price_per_mwh.value_or(MustDeliverPenalty(schedule.slots, eff));

  // Columns 1..n: grid kWh per slot in [0, Pmax * h]; column n + 1: kWh
  // left undelivered. One row: eff * sum(e) + s = target.
  QuietGlpk quiet;
  LpPtr lp(glp_create_prob());
  glp_set_obj_dir(lp.get(), GLP_MIN);
  glp_add_rows(lp.get(), 1);
  glp_set_row_bnds(lp.get(), 1, GLP_FX, target.store_kwh, target.store_kwh);
  glp_add_cols(lp.get(), n + 1);
  std::vector<int> ind(n + 2);
  std::vector<double> val(n + 2);
  for (int i = 0; i < n; ++i) {
    SetColumnUpTo(lp.get(), i + 1, need.max_charge_kw * hours[i]);
    glp_set_obj_coef(lp.get(), i + 1, schedule.slots[i].price_per_mwh / kKwhPerMwh);
    ind[i + 1] = i + 1;
    val[i + 1] = eff;
  }
  glp_set_col_bnds(lp.get(), n + 1, GLP_LO, 0.0, 0.0);
  glp_set_obj_coef(lp.get(), n + 1, undelivered_per_mwh / kKwhPerMwh);
  ind[n + 1] = n + 1;
  val[n + 1] = 1.0;
  glp_set_mat_row(lp.get(), 1, n + 1, ind.data(), val.data());
  if (Status s = Simplex(lp.get(), fmt::format("charging LP over {} slots", n)); !s.ok()) return s;

  std::vector<double> grid_kwh(n);
  for (int i = 0; i < n; ++i) {
    grid_kwh[i] = std::clamp(glp_get_col_prim(lp.get(), i + 1), 0.0, need.max_charge_kw * hours[i]);
  }
  Finish(need, target, hours, grid_kwh, std::nullopt, &schedule);
  return schedule;
}

StatusOr<std::vector<ChargingSchedule>> OptimizeShared(const std::vector<ChargeNeed>& needs,
                                                       double import_limit_kw,
                                                       const std::vector<PriceInterval>& prices) {
  if (Status s = ValidateImportLimit(import_limit_kw); !s.ok()) return s;
  for (size_t d = 0; d < needs.size(); ++d) {
    if (Status s = ValidateNamed(needs[d], fmt::format("charge request {}", d)); !s.ok()) return s;
  }
  const size_t devices = needs.size();
  std::vector<ChargingSchedule> schedules(devices);
  if (devices == 0) return schedules;

  std::vector<std::vector<double>> hours(devices);
  std::vector<std::vector<SlotSpan>> spans(devices);
  std::vector<Target> targets(devices);
  std::vector<int> first_col(devices);  // column of the device's first slot (1-based)
  std::vector<int> short_col(devices);  // column of the device's undelivered kWh
  int cols = 0;
  for (size_t d = 0; d < devices; ++d) {
    BuildSlots(needs[d], prices, &schedules[d].slots, &hours[d], &spans[d]);
    targets[d] = TargetOf(needs[d]);
    first_col[d] = cols + 1;
    cols += static_cast<int>(schedules[d].slots.size());
    short_col[d] = ++cols;
  }

  // Columns: each device's power (kW) per slot, then its undelivered kWh.
  // Power rather than energy, so the limit rows read as kW.
  QuietGlpk quiet;
  LpPtr lp(glp_create_prob());
  glp_set_obj_dir(lp.get(), GLP_MIN);
  glp_add_cols(lp.get(), cols);
  std::vector<int> ia{0}, ja{0};  // GLPK's arrays are 1-based
  std::vector<double> ar{0.0};
  glp_add_rows(lp.get(), static_cast<int>(devices));
  for (size_t d = 0; d < devices; ++d) {
    const ChargeNeed& need = needs[d];
    const int row = static_cast<int>(d) + 1;
    // The limit bounds each device alone too; as a bound, not a row.
    const double ub_kw = std::min(need.max_charge_kw, import_limit_kw);
    for (size_t j = 0; j < hours[d].size(); ++j) {
      const int col = first_col[d] + static_cast<int>(j);
      SetColumnUpTo(lp.get(), col, ub_kw);
      ia.push_back(row);
      ja.push_back(col);
      ar.push_back(need.efficiency * hours[d][j]);
    }
    glp_set_col_bnds(lp.get(), short_col[d], GLP_LO, 0.0, 0.0);
    ia.push_back(row);
    ja.push_back(short_col[d]);
    ar.push_back(1.0);
    glp_set_row_bnds(lp.get(), row, GLP_FX, targets[d].store_kwh, targets[d].store_kwh);
  }

  // The limit holds at every instant. A device's power is constant over its
  // slot, so within one price interval the devices charging together change
  // only where a window starts or ends: one row per maximal set of devices
  // overlapping in time within an interval (a subset's row is implied).
  struct Part {
    int col;
    int64_t lo, hi;
  };
  std::vector<std::vector<Part>> by_interval(prices.size());
  for (size_t d = 0; d < devices; ++d) {
    for (size_t j = 0; j < spans[d].size(); ++j) {
      by_interval[spans[d][j].interval].push_back(Part{
          first_col[d] + static_cast<int>(j), schedules[d].slots[j].start_ms, spans[d][j].end_ms});
    }
  }
  int limit_rows = 0;
  std::vector<int64_t> cuts;
  std::vector<std::vector<int>> sets;
  for (const std::vector<Part>& parts : by_interval) {
    if (parts.size() < 2) continue;
    cuts.clear();
    for (const Part& p : parts) {
      cuts.push_back(p.lo);
      cuts.push_back(p.hi);
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    sets.clear();
    for (size_t k = 0; k + 1 < cuts.size(); ++k) {
      std::vector<int> set;  // indices into parts, ascending
      for (size_t p = 0; p < parts.size(); ++p) {
        if (parts[p].lo <= cuts[k] && parts[p].hi >= cuts[k + 1])
          set.push_back(static_cast<int>(p));
      }
      if (set.size() >= 2) sets.push_back(std::move(set));
    }
    for (size_t a = 0; a < sets.size(); ++a) {
      bool implied = false;
      for (size_t b = 0; b < sets.size() && !implied; ++b) {
        if (a == b) continue;
        const bool contains =
            std::includes(sets[b].begin(), sets[b].end(), sets[a].begin(), sets[a].end());
        // Of two equal sets, keep the first.
        implied = contains && (sets[b].size() > sets[a].size() || b < a);
      }
      if (implied) continue;
      const int row = glp_add_rows(lp.get(), 1);
      glp_set_row_bnds(lp.get(), row, GLP_UP, 0.0, import_limit_kw);
      for (int p : sets[a]) {
        ia.push_back(row);
        ja.push_back(parts[p].col);
        ar.push_back(1.0);
      }
      ++limit_rows;
    }
  }
  glp_load_matrix(lp.get(), static_cast<int>(ia.size()) - 1, ia.data(), ja.data(), ar.data());
  const std::string what = fmt::format("shared charging LP ({} devices, {} columns, {} limit rows)",
                                       devices, cols, limit_rows);

  // A device without an undelivered price is to get as much as it can,
  // whatever it costs: first the most the must-deliver devices can store
  // together, then the cheapest schedule that stores that much. (One
  // penalty price would do it only if large enough for every exchange of
  // power between devices whose slots differ in length by any factor.)
  std::vector<size_t> must;
  for (size_t d = 0; d < devices; ++d) {
    if (!needs[d].undelivered_price_per_mwh) must.push_back(d);
  }
  if (!must.empty()) {
    for (size_t d : must) glp_set_obj_coef(lp.get(), short_col[d], 1.0);
    if (Status s = Simplex(lp.get(), what + ", most energy"); !s.ok()) return s;
    double least_short = 0;
    for (size_t d : must) least_short += glp_get_col_prim(lp.get(), short_col[d]);
    // A hair of slack: the first optimum is exact only to the solver's
    // tolerance, and without it the second problem can come out infeasible.
    // So that the slack is not spent on saving money, leaving energy
    // undelivered still costs a penalty above any slot's price.
    const int row = glp_add_rows(lp.get(), 1);
    glp_set_row_bnds(lp.get(), row, GLP_UP, 0.0, std::max(0.0, least_short) * (1 + kRelTol));
    double most_price = 0, least_eff = 1, most_undelivered = 0;
    for (const ChargingSchedule& schedule : schedules) {
      for (const ScheduleSlot& slot : schedule.slots) {
        most_price = std::max(most_price, std::abs(slot.price_per_mwh));
      }
    }
    for (const ChargeNeed& need : needs) {
      least_eff = std::min(least_eff, need.efficiency);
      most_undelivered =
          std::max(most_undelivered, std::abs(need.undelivered_price_per_mwh.value_or(0)));
    }
    const double penalty_per_mwh = 1e3 * (most_price / least_eff + most_undelivered + 1);
    std::vector<int> ind{0};
    std::vector<double> val{0.0};
    for (size_t d : must) {
      ind.push_back(short_col[d]);
      val.push_back(1.0);
      glp_set_obj_coef(lp.get(), short_col[d], penalty_per_mwh / kKwhPerMwh);
    }
    glp_set_mat_row(lp.get(), row, static_cast<int>(must.size()), ind.data(), val.data());
  }
  for (size_t d = 0; d < devices; ++d) {
    for (size_t j = 0; j < hours[d].size(); ++j) {
      glp_set_obj_coef(lp.get(), first_col[d] + static_cast<int>(j),
                       schedules[d].slots[j].price_per_mwh / kKwhPerMwh * hours[d][j]);
    }
    if (needs[d].undelivered_price_per_mwh) {
      glp_set_obj_coef(lp.get(), short_col[d], *needs[d].undelivered_price_per_mwh / kKwhPerMwh);
    }
  }
  if (Status s = Simplex(lp.get(), what); !s.ok()) return s;

  const SharedLimit shared{import_limit_kw};
  std::vector<double> grid_kwh;
  for (size_t d = 0; d < devices; ++d) {
    const size_t n = hours[d].size();
    grid_kwh.assign(n, 0.0);
    for (size_t j = 0; j < n; ++j) {
      const double kw = std::clamp(glp_get_col_prim(lp.get(), first_col[d] + static_cast<int>(j)),
                                   0.0, needs[d].max_charge_kw);
      grid_kwh[j] = kw * hours[d][j];
    }
    Finish(needs[d], targets[d], hours[d], grid_kwh, shared, &schedules[d]);
  }
  return schedules;
}

}  // namespace derms::scheduling
