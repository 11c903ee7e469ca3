// The cheapest charging schedule under a price forecast. Pure logic.
//
// One device: charge power x_i in [0, max_charge_kw] in each price interval
// of the window [earliest_start_ms, ready_by_ms) (intervals clipped to the
// window, partial ones included), drawing x_i * h_i kWh from the grid and
// storing efficiency times that. Minimise sum(price_i * x_i * h_i) subject to
// storing `energy_kwh` (limited to the room left, when state of charge and
// capacity are given). If an undelivered-energy price is given, energy may be
// left undelivered at that price per kWh when charging costs more. This has a
// closed-form optimum: fill the cheapest intervals first (OptimizeSingle).
//
// Several devices sharing a site or feeder import limit: a linear program,
// solved with GLPK (OptimizeShared). SolveSingleWithLp solves the one-device
// problem the same way, as the reference the closed form is checked and
// benchmarked against.
#ifndef DERMS_CLOUD_AGGREGATOR_SCHEDULING_CHARGING_OPTIMIZER_H_
#define DERMS_CLOUD_AGGREGATOR_SCHEDULING_CHARGING_OPTIMIZER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cloud_aggregator/scheduling/price_book.h"
#include "common/status.h"

namespace derms::scheduling {

struct ChargeNeed {
  double max_charge_kw = 0;  // > 0
  double energy_kwh = 0;     // > 0: energy to store by ready_by
  int64_t earliest_start_ms = 0;
  int64_t ready_by_ms = 0;             // > earliest_start_ms
  std::optional<double> soc_pct;       // with capacity: caps energy at the room left
  std::optional<double> capacity_kwh;  // > 0
  double efficiency = 1.0;             // (0, 1]: stored / drawn
  // Price (per MWh of energy stored) of leaving energy undelivered; absent:
  // deliver as much as possible whatever it costs.
  std::optional<double> undelivered_price_per_mwh;
};

// Bounds on every input, so that no request can make the optimiser's
// arithmetic meaningless (1e300 kW "solved" at a cost of 3.6e298).
inline constexpr double kMaxChargeKw = 1e5;        // 100 MW: above any one charging site
inline constexpr double kMaxEnergyKwh = 1e6;       // 1 GWh: above any one device
inline constexpr double kMinEfficiency = 0.1;      // stored / drawn
inline constexpr double kMaxAbsPricePerMwh = 1e5;  // as forecast prices (price_book.h)
inline constexpr double kMaxImportLimitKw = 1e7;   // above any one site or feeder
inline constexpr int64_t kMaxLeadMs = 366LL * 86400 * 1000;  // earliest start after now

// Ok, or "invalid_field" naming the field, the value and the rule:
// max_charge_kw in (0, kMaxChargeKw], energy_kwh and capacity_kwh in
// (0, kMaxEnergyKwh], times between the years 2000 and 9999 with ready_by
// after earliest_start by at most 31 days, soc_pct in [0, 100], efficiency
// in [kMinEfficiency, 1], undelivered price within kMaxAbsPricePerMwh of 0;
// every number finite.
[[nodiscard]] Status ValidateNeed(const ChargeNeed& need);
// ValidateNeed, and against the clock: ready_by after `now_ms` (a window
// already over cannot be charged in) and earliest start at most kMaxLeadMs
// after it.
[[nodiscard]] Status ValidateNeedAt(const ChargeNeed& need, int64_t now_ms);
// Ok, or "invalid_field": a shared import limit in (0, kMaxImportLimitKw].
[[nodiscard]] Status ValidateImportLimit(double import_limit_kw);

struct ScheduleSlot {
  int64_t start_ms = 0;
  int64_t duration_s = 0;  // whole seconds of it; energy uses its exact milliseconds
  double price_per_mwh = 0;
  double power_kw = 0;  // >= 0: charging power drawn from the grid
};

struct ChargingSchedule {
  std::vector<ScheduleSlot> slots;  // every interval of the window, in time order
  double energy_kwh = 0;            // stored
  double grid_energy_kwh = 0;       // drawn
  double cost = 0;                  // sum of price * drawn energy (currency of the prices)
  double shortfall_kwh = 0;         // energy asked for but not stored
  double undelivered_cost = 0;      // shortfall priced at undelivered_price (0 if none)
  // Charging at full power from the start until the energy is stored.
  double immediate_cost = 0;
  std::string reason;  // why there is a shortfall, empty otherwise
};

// REQUIRES: ValidateNeed(need).ok(); `prices` cover the window (from
// PriceBook::Window), in time order.
ChargingSchedule OptimizeSingle(const ChargeNeed& need, const std::vector<PriceInterval>& prices);

// The same problem as a linear program solved by GLPK's simplex.
StatusOr<ChargingSchedule> SolveSingleWithLp(const ChargeNeed& need,
                                             const std::vector<PriceInterval>& prices);

// Several devices at one node under a shared import limit (kW, at every
// instant), each with its own window inside the prices' span. Devices
// without an undelivered price are served first: as much energy as they
// can store together, then the cheapest schedule that stores it. Errors:
// "invalid_field" for a need (named by its index) or a limit that is not a
// finite number > 0; "solver_error" with GLPK's status.
StatusOr<std::vector<ChargingSchedule>> OptimizeShared(const std::vector<ChargeNeed>& needs,
                                                       double import_limit_kw,
                                                       const std::vector<PriceInterval>& prices);

}  // namespace derms::scheduling

#endif  // DERMS_CLOUD_AGGREGATOR_SCHEDULING_CHARGING_OPTIMIZER_H_
