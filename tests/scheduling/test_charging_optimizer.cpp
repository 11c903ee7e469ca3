// The charging optimiser: hand-worked schedules, every invalid input, then
// the closed form checked against GLPK's simplex on random instances, and
// the shared-limit LP against the single-device optima (fixed seeds, so
// every run is the same).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cloud_aggregator/scheduling/charging_optimizer.h"

using derms::scheduling::ChargeNeed;
using derms::scheduling::ChargingSchedule;
using derms::scheduling::OptimizeShared;
using derms::scheduling::OptimizeSingle;
using derms::scheduling::PriceInterval;
using derms::scheduling::SolveSingleWithLp;
using derms::scheduling::ValidateNeed;

namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // a whole second
constexpr int64_t kHourMs = 3'600'000;
constexpr double kTol = 1e-9;

// Back-to-back intervals of `step_s` from `start_ms`.
std::vector<PriceInterval> Series(int64_t start_ms, int64_t step_s,
                                  const std::vector<double>& per_mwh) {
  std::vector<PriceInterval> prices;
  for (size_t i = 0; i < per_mwh.size(); ++i) {
    prices.push_back({start_ms + static_cast<int64_t>(i) * step_s * 1000, step_s, per_mwh[i]});
  }
  return prices;
}

ChargeNeed Need(double kw, double kwh, int64_t from_ms, int64_t to_ms) {
  ChargeNeed n;
  n.max_charge_kw = kw;
  n.energy_kwh = kwh;
  n.earliest_start_ms = from_ms;
  n.ready_by_ms = to_ms;
  return n;
}

std::vector<double> Powers(const ChargingSchedule& s) {
  std::vector<double> kw;
  for (const auto& slot : s.slots) kw.push_back(slot.power_kw);
  return kw;
}

bool Close(double a, double b, double rel = kTol, double abs = kTol) {
  return std::abs(a - b) <= rel * std::max(std::abs(a), std::abs(b)) + abs;
}

// ---- Random instances ----

struct Instance {
  std::vector<PriceInterval> prices;
  ChargeNeed need;
};

// A price series of 5 to 30 minute intervals, sometimes of mixed lengths,
// priced in cents per MWh (real forecasts are): distinct prices then differ
// by far more than a simplex's optimality tolerance, so the solvers agree on
// which is cheaper. A third of the series draw from a few values, for ties;
// some prices are negative.
std::vector<PriceInterval> RandomPrices(std::mt19937_64& rng, int64_t start_ms) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int64_t steps_s[] = {300, 600, 900, 1200, 1800};
  const int64_t step_s = steps_s[rng() % 5];
  const bool mixed = u(rng) < 0.25;
  const bool ties = u(rng) < 0.33;
  const double few[] = {-12.5, 0, 25, 40, 40.01, 95};
  const int n = 2 + static_cast<int>(rng() % 150);
  std::vector<PriceInterval> prices;
  int64_t t = start_ms;
  for (int i = 0; i < n; ++i) {
    const int64_t len_s = mixed ? steps_s[rng() % 5] : step_s;
    const double price =
        ties ? few[rng() % 6] : std::round((u(rng) * 300.0 - 60.0) * 100.0) / 100.0;
    prices.push_back({t, len_s, price});
    t += len_s * 1000;
  }
  return prices;
}

int64_t EndOf(const std::vector<PriceInterval>& prices) {
  return prices.back().start_ms + prices.back().duration_s * 1000;
}

// A need whose window is anywhere inside [from_ms, to_ms), at millisecond
// resolution, asking for between a sliver and more than the window can hold.
ChargeNeed RandomNeed(std::mt19937_64& rng, const std::vector<PriceInterval>& prices,
                      int64_t from_ms, int64_t to_ms) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::uniform_int_distribution<int64_t> at(from_ms, to_ms - 1);
  int64_t a = at(rng), b = at(rng);
  if (a > b) std::swap(a, b);
  ChargeNeed n = Need(1 + 19 * u(rng), 0, a, b + 1);
  n.efficiency = u(rng) < 0.5 ? 1.0 : 0.7 + 0.3 * u(rng);
  const double window_h = static_cast<double>(n.ready_by_ms - n.earliest_start_ms) / kHourMs;
  n.energy_kwh = std::max(1e-3, (0.02 + 1.28 * u(rng)) * n.max_charge_kw * window_h * n.efficiency);
  if (u(rng) < 0.3) {
    n.capacity_kwh = 10 + 90 * u(rng);
    n.soc_pct = 100 * u(rng);
  }
  if (u(rng) < 0.4) {
    // Away from every price per MWh stored: at a near tie the solvers'
    // tolerances, not optimality, decide whether a slot is worth charging.
    for (int attempt = 0; attempt < 100; ++attempt) {
      const double v = -20 + 420 * u(rng);
      bool clear = true;
      for (const auto& p : prices)
        clear = clear && std::abs(p.price_per_mwh / n.efficiency - v) > 1e-3;
      if (clear) {
        n.undelivered_price_per_mwh = v;
        break;
      }
    }
  }
  return n;
}

Instance RandomInstance(std::mt19937_64& rng) {
  Instance in;
  in.prices = RandomPrices(rng, kT0 + static_cast<int64_t>(rng() % 86400) * 1000);
  in.need = RandomNeed(rng, in.prices, in.prices.front().start_ms, EndOf(in.prices));
  return in;
}

// The end of each slot: slots over back-to-back prices are back to back
// too, and the last ends with the window (duration_s drops the
// milliseconds).
std::vector<int64_t> SlotEnds(const ChargingSchedule& s, const ChargeNeed& need) {
  std::vector<int64_t> ends;
  for (size_t j = 0; j + 1 < s.slots.size(); ++j) ends.push_back(s.slots[j + 1].start_ms);
  if (!s.slots.empty()) ends.push_back(need.ready_by_ms);
  return ends;
}

}  // namespace

// ---- Hand-worked single-device schedules ----

TEST_CASE("one device charges in the cheapest intervals first", "[unit]") {
  // 10 kW for 20 kWh over hours at 50, 10, 30, 20: the hours at 10 and 20.
  auto prices = Series(kT0, 3600, {50, 10, 30, 20});
  ChargingSchedule s = OptimizeSingle(Need(10, 20, kT0, kT0 + 4 * kHourMs), prices);
  CHECK(Powers(s) == std::vector<double>{0, 10, 0, 10});
  CHECK(s.energy_kwh == Approx(20));
  CHECK(s.grid_energy_kwh == Approx(20));
  CHECK(s.cost == Approx(10 * 10 / 1000.0 + 10 * 20 / 1000.0));
  CHECK(s.shortfall_kwh == 0);
  CHECK(s.reason.empty());
  REQUIRE(s.slots.size() == 4);
  CHECK(s.slots[1].start_ms == kT0 + kHourMs);
  CHECK(s.slots[1].duration_s == 3600);
  CHECK(s.slots[1].price_per_mwh == 10);
}

TEST_CASE("the marginal interval is charged at partial power", "[unit]") {
  // 25 kWh: both cheap hours in full, then 5 kWh in the hour at 30.
  auto prices = Series(kT0, 3600, {50, 10, 30, 20});
  ChargingSchedule s = OptimizeSingle(Need(10, 25, kT0, kT0 + 4 * kHourMs), prices);
  CHECK(Powers(s) == std::vector<double>{0, 10, 5, 10});
  CHECK(s.cost == Approx(0.1 + 0.2 + 5 * 30 / 1000.0));
}

TEST_CASE("intervals cut by the window count only their part inside it", "[unit]") {
  // Window 00:30 to 02:15 over hours at 40, 10, 20: half an hour at 40, an
  // hour at 10, a quarter hour at 20. 12 kWh at 10 kW: the hour at 10 and
  // 2 kWh of the quarter hour's 2.5 (8 kW).
  auto prices = Series(kT0, 3600, {40, 10, 20});
  ChargingSchedule s =
      OptimizeSingle(Need(10, 12, kT0 + kHourMs / 2, kT0 + 2 * kHourMs + kHourMs / 4), prices);
  REQUIRE(s.slots.size() == 3);
  CHECK(s.slots[0].start_ms == kT0 + kHourMs / 2);
  CHECK(s.slots[0].duration_s == 1800);
  CHECK(s.slots[2].duration_s == 900);
  CHECK(s.slots[0].power_kw == 0);
  CHECK(s.slots[1].power_kw == 10);
  CHECK(s.slots[2].power_kw == Approx(8));
  CHECK(s.cost == Approx(0.1 + 2 * 20 / 1000.0));
}

TEST_CASE("a window edge between whole seconds counts its milliseconds", "[unit]") {
  // 3599.5 s at 10 kW is 9.99861 kWh: the slot shows 3599 whole seconds
  // but the energy is that of the exact length.
  auto prices = Series(kT0, 3600, {30});
  ChargingSchedule s = OptimizeSingle(Need(10, 50, kT0 + 500, kT0 + kHourMs), prices);
  REQUIRE(s.slots.size() == 1);
  CHECK(s.slots[0].start_ms == kT0 + 500);
  CHECK(s.slots[0].duration_s == 3599);
  CHECK(s.energy_kwh == Approx(10 * 3599.5 / 3600).epsilon(1e-12));
}

TEST_CASE("efficiency losses are drawn from the grid and paid for", "[unit]") {
  // Storing 8 kWh at 80 % draws 10 kWh: all of the hour at 10.
  auto prices = Series(kT0, 3600, {10, 20});
  ChargeNeed need = Need(10, 8, kT0, kT0 + 2 * kHourMs);
  need.efficiency = 0.8;
  ChargingSchedule s = OptimizeSingle(need, prices);
  CHECK(Powers(s) == std::vector<double>{10, 0});
  CHECK(s.grid_energy_kwh == Approx(10));
  CHECK(s.energy_kwh == Approx(8));
  CHECK(s.cost == Approx(0.1));
}

TEST_CASE("a battery nearly full stores only the room it has left and says why", "[unit]") {
  // 80 % of 50 kWh: 10 kWh of room for a request of 20.
  auto prices = Series(kT0, 3600, {10, 20, 30});
  ChargeNeed need = Need(10, 20, kT0, kT0 + 3 * kHourMs);
  need.soc_pct = 80;
  need.capacity_kwh = 50;
  ChargingSchedule s = OptimizeSingle(need, prices);
  CHECK(Powers(s) == std::vector<double>{10, 0, 0});
  CHECK(s.energy_kwh == Approx(10));
  CHECK(s.shortfall_kwh == Approx(10));
  CHECK(s.undelivered_cost == 0);
  CHECK(s.reason == "asks for 20.0 kWh but only 10.0 kWh fits (soc_pct 80 of capacity_kwh 50)");
}

TEST_CASE("with an undelivered price, intervals dearer than it are left uncharged", "[unit]") {
  // At 90 % a stored MWh costs 11.1, 111.1 and 222.2 in the three hours;
  // leaving it undelivered costs 150. 25 kWh asked: only the first two
  // hours (18 kWh stored), the other 7 kWh undelivered.
  auto prices = Series(kT0, 3600, {10, 100, 200});
  ChargeNeed need = Need(10, 25, kT0, kT0 + 3 * kHourMs);
  need.efficiency = 0.9;
  need.undelivered_price_per_mwh = 150;
  ChargingSchedule s = OptimizeSingle(need, prices);
  CHECK(Powers(s) == std::vector<double>{10, 10, 0});
  CHECK(s.energy_kwh == Approx(18));
  CHECK(s.cost == Approx(0.1 + 1.0));
  CHECK(s.shortfall_kwh == Approx(7));
  CHECK(s.undelivered_cost == Approx(7 * 150 / 1000.0));
  CHECK(s.reason ==
        "stores 18.0 of 25.0 kWh: charging more costs more than undelivered_price_per_mwh 150 per "
        "MWh stored");
}

TEST_CASE("negative prices are used but never to store more than asked", "[unit]") {
  auto prices = Series(kT0, 3600, {-20, -5, 30});
  ChargingSchedule s = OptimizeSingle(Need(10, 15, kT0, kT0 + 3 * kHourMs), prices);
  CHECK(Powers(s) == std::vector<double>{10, 5, 0});
  CHECK(s.energy_kwh == Approx(15));
  CHECK(s.cost == Approx(-0.2 - 0.025));
}

TEST_CASE("equally priced intervals are filled earliest first", "[unit]") {
  auto prices = Series(kT0, 3600, {10, 10, 10});
  ChargingSchedule s = OptimizeSingle(Need(10, 15, kT0, kT0 + 3 * kHourMs), prices);
  CHECK(Powers(s) == std::vector<double>{10, 5, 0});
}

TEST_CASE("immediate cost charges at full power from the start until stored", "[unit]") {
  // 15 kWh at 10 kW from the start: the hour at 50, half of the hour at 10,
  // whatever the undelivered price says.
  auto prices = Series(kT0, 3600, {50, 10, 30});
  ChargeNeed need = Need(10, 15, kT0, kT0 + 3 * kHourMs);
  need.undelivered_price_per_mwh = 20;
  ChargingSchedule s = OptimizeSingle(need, prices);
  CHECK(s.immediate_cost == Approx(10 * 50 / 1000.0 + 5 * 10 / 1000.0));
  CHECK(s.cost == Approx(10 * 10 / 1000.0));
}

TEST_CASE("too little time at full power charges throughout and reports the shortfall", "[unit]") {
  // 6 h at 5 kW and 95 % store at most 28.5 kWh of the 40 asked.
  auto prices = Series(kT0, 3600, {60, 10, 20, 30, 40, 50});
  ChargeNeed need = Need(5, 40, kT0, kT0 + 6 * kHourMs);
  need.efficiency = 0.95;
  ChargingSchedule s = OptimizeSingle(need, prices);
  CHECK(Powers(s) == std::vector<double>(6, 5.0));
  CHECK(s.energy_kwh == Approx(28.5));
  CHECK(s.shortfall_kwh == Approx(11.5));
  CHECK(s.cost == Approx(5 * (60 + 10 + 20 + 30 + 40 + 50) / 1000.0));
  CHECK(s.immediate_cost == Approx(s.cost));
  CHECK(s.reason == "needs 40.0 kWh but 6.0 h at 5.0 kW stores at most 28.5 kWh by ready_by");

  auto lp = SolveSingleWithLp(need, prices);
  REQUIRE(lp.ok());
  CHECK(lp->cost == Approx(s.cost));
  CHECK(lp->reason == s.reason);
}

TEST_CASE("time without prices is not charged and the reason says so", "[unit]") {
  // Prices cover 2 of the 4 hours asked for.
  auto prices = Series(kT0, 3600, {10, 20});
  ChargingSchedule s = OptimizeSingle(Need(10, 30, kT0, kT0 + 4 * kHourMs), prices);
  CHECK(s.slots.size() == 2);
  CHECK(s.energy_kwh == Approx(20));
  CHECK(s.reason ==
        "needs 30.0 kWh but 2.0 h at 10.0 kW stores at most 20.0 kWh by ready_by (prices cover "
        "2.00 h of the 4.00 h window)");
  // A window whose millisecond edges have no prices, as PriceBook::Window
  // leaves it, is not worth the note.
  ChargingSchedule edges = OptimizeSingle(Need(10, 30, kT0 - 500, kT0 + 2 * kHourMs + 500), prices);
  CHECK(edges.reason == "needs 30.0 kWh but 2.0 h at 10.0 kW stores at most 20.0 kWh by ready_by");
}

TEST_CASE("the LP reference gives the hand-worked schedule", "[unit]") {
  auto prices = Series(kT0, 3600, {50, 10, 30, 20});
  auto lp = SolveSingleWithLp(Need(10, 25, kT0, kT0 + 4 * kHourMs), prices);
  REQUIRE(lp.ok());
  CHECK(lp->slots.size() == 4);
  CHECK(lp->slots[1].power_kw == Approx(10));
  CHECK(lp->slots[2].power_kw == Approx(5));
  CHECK(lp->slots[3].power_kw == Approx(10));
  CHECK(lp->cost == Approx(0.45));
  CHECK(lp->immediate_cost == Approx(0.5 + 0.1 + 5 * 30 / 1000.0));
}

// ---- Invalid input ----

TEST_CASE("every invalid field of a charge request is rejected by name and rule", "[unit]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const ChargeNeed good = Need(7, 20, kT0, kT0 + kHourMs);
  REQUIRE(ValidateNeed(good).ok());
  struct Case {
    ChargeNeed need;
    std::string message;
  };
  std::vector<Case> cases;
  auto with = [&](auto change, std::string message) {
    ChargeNeed n = good;
    change(n);
    cases.push_back({n, "charge request: " + message});
  };
  with([](ChargeNeed& n) { n.max_charge_kw = -3; }, "max_charge_kw -3 must be > 0");
  with([](ChargeNeed& n) { n.max_charge_kw = 0; }, "max_charge_kw 0 must be > 0");
  with([&](ChargeNeed& n) { n.max_charge_kw = nan; }, "max_charge_kw nan is not a finite number");
  with([&](ChargeNeed& n) { n.max_charge_kw = inf; }, "max_charge_kw inf is not a finite number");
  with([](ChargeNeed& n) { n.energy_kwh = 0; }, "energy_kwh 0 must be > 0");
  with([](ChargeNeed& n) { n.energy_kwh = -1.5; }, "energy_kwh -1.5 must be > 0");
  with([&](ChargeNeed& n) { n.energy_kwh = nan; }, "energy_kwh nan is not a finite number");
  with([](ChargeNeed& n) { n.ready_by_ms = n.earliest_start_ms; },
       "ready_by_ms 1700000000000 must be after earliest_start_ms 1700000000000");
  with([](ChargeNeed& n) { n.ready_by_ms = n.earliest_start_ms - 1; },
       "ready_by_ms 1699999999999 must be after earliest_start_ms 1700000000000");
  with([](ChargeNeed& n) { n.soc_pct = -1; }, "soc_pct -1 outside [0, 100]");
  with([](ChargeNeed& n) { n.soc_pct = 100.5; }, "soc_pct 100.5 outside [0, 100]");
  with([&](ChargeNeed& n) { n.soc_pct = nan; }, "soc_pct nan outside [0, 100]");
  with([](ChargeNeed& n) { n.capacity_kwh = 0; }, "capacity_kwh 0 must be > 0");
  with([](ChargeNeed& n) { n.capacity_kwh = -5; }, "capacity_kwh -5 must be > 0");
  with([&](ChargeNeed& n) { n.capacity_kwh = inf; }, "capacity_kwh inf is not a finite number");
  with([](ChargeNeed& n) { n.efficiency = 0; }, "efficiency 0 outside [0.1, 1] (stored / drawn)");
  with([](ChargeNeed& n) { n.efficiency = 1.1; },
       "efficiency 1.1 outside [0.1, 1] (stored / drawn)");
  with([&](ChargeNeed& n) { n.efficiency = nan; },
       "efficiency nan outside [0.1, 1] (stored / drawn)");
  with([](ChargeNeed& n) { n.efficiency = 1e-300; },
       "efficiency 1e-300 outside [0.1, 1] (stored / drawn)");
  with([](ChargeNeed& n) { n.max_charge_kw = 1e300; },
       "max_charge_kw 1e+300 outside (0, 100000]: more than any one charging site draws");
  with([](ChargeNeed& n) { n.energy_kwh = 1e300; },
       "energy_kwh 1e+300 outside (0, 1000000]: more than any one device stores");
  with([](ChargeNeed& n) { n.capacity_kwh = 2e6; },
       "capacity_kwh 2000000 outside (0, 1000000]: more than any one device stores");
  with([](ChargeNeed& n) { n.undelivered_price_per_mwh = 1e300; },
       "undelivered_price_per_mwh 1e+300 outside [-100000, 100000] (the bound on forecast "
       "prices)");
  with([&](ChargeNeed& n) { n.undelivered_price_per_mwh = nan; },
       "undelivered_price_per_mwh nan is not a finite number");
  with([&](ChargeNeed& n) { n.undelivered_price_per_mwh = -inf; },
       "undelivered_price_per_mwh -inf is not a finite number");
  auto prices = Series(kT0, 3600, {10});
  for (const Case& c : cases) {
    INFO(c.message);
    auto s = ValidateNeed(c.need);
    CHECK(s.code() == "invalid_field");
    CHECK(s.message() == c.message);
    // The LP and the shared optimiser refuse it the same way.
    auto lp = SolveSingleWithLp(c.need, prices);
    CHECK(lp.status().message() == c.message);
    auto shared = OptimizeShared({good, c.need}, 10, prices);
    CHECK(shared.status().code() == "invalid_field");
    CHECK(shared.status().message() ==
          "charge request 1: " + c.message.substr(std::string("charge request: ").size()));
  }
}

TEST_CASE("a shared import limit that is not a positive number is rejected", "[unit]") {
  auto prices = Series(kT0, 3600, {10});
  for (double limit : {0.0, -2.0, std::numeric_limits<double>::quiet_NaN(),
                       std::numeric_limits<double>::infinity()}) {
    auto r = OptimizeShared({Need(7, 5, kT0, kT0 + kHourMs)}, limit, prices);
    CHECK(r.status().code() == "invalid_field");
    CHECK(r.status().message().find("import_limit_kw") != std::string::npos);
  }
}

// ---- Several devices under one import limit ----

TEST_CASE("a binding import limit sends the second device to the dearer hour", "[unit]") {
  // Two 10 kW devices each want 10 kWh over hours at 10 and 50, under a
  // 10 kW limit: one takes the cheap hour, the other the dear one.
  auto prices = Series(kT0, 3600, {10, 50});
  ChargeNeed need = Need(10, 10, kT0, kT0 + 2 * kHourMs);
  auto r = OptimizeShared({need, need}, 10, prices);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  const auto& a = (*r)[0];
  const auto& b = (*r)[1];
  CHECK(a.energy_kwh == Approx(10));
  CHECK(b.energy_kwh == Approx(10));
  CHECK(a.slots[0].power_kw + b.slots[0].power_kw == Approx(10));
  CHECK(a.slots[1].power_kw + b.slots[1].power_kw == Approx(10));
  CHECK(a.cost + b.cost == Approx(0.1 + 0.5));
  CHECK(a.reason.empty());
  CHECK(b.reason.empty());
}

TEST_CASE("a device without an undelivered price is served before one with", "[unit]") {
  // One hour, 10 kW between them: the must-deliver device takes its 8 kWh
  // although the other values its energy far above the price.
  auto prices = Series(kT0, 3600, {10});
  ChargeNeed must = Need(10, 8, kT0, kT0 + kHourMs);
  ChargeNeed priced = must;
  priced.undelivered_price_per_mwh = 5000;
  auto r = OptimizeShared({priced, must}, 10, prices);
  REQUIRE(r.ok());
  CHECK((*r)[1].energy_kwh == Approx(8));
  CHECK((*r)[0].energy_kwh == Approx(2));
  CHECK((*r)[0].shortfall_kwh == Approx(6));
  CHECK((*r)[0].undelivered_cost == Approx(6 * 5.0));
  CHECK((*r)[0].reason ==
        "stores 2.0 of 8.0 kWh: more would exceed the shared import limit of 10 kW or cost more "
        "than undelivered_price_per_mwh 5000 per MWh stored");
}

TEST_CASE("devices whose windows do not overlap within an interval may each use the limit",
          "[unit]") {
  // One hour at 10; the first device may charge in its first half, the
  // second in its second half: each at the full 10 kW limit.
  auto prices = Series(kT0, 3600, {10});
  ChargeNeed first = Need(10, 5, kT0, kT0 + kHourMs / 2);
  ChargeNeed second = Need(10, 5, kT0 + kHourMs / 2, kT0 + kHourMs);
  auto r = OptimizeShared({first, second}, 10, prices);
  REQUIRE(r.ok());
  CHECK((*r)[0].energy_kwh == Approx(5));
  CHECK((*r)[1].energy_kwh == Approx(5));
  CHECK((*r)[0].shortfall_kwh == 0);
  CHECK((*r)[1].shortfall_kwh == 0);
}

// ---- The closed form against the LP, on random instances ----

TEST_CASE("the closed form costs exactly what GLPK's simplex finds on random instances", "[unit]") {
  std::mt19937_64 rng(20240611);
  int with_shortfall = 0, with_price = 0, capped = 0;
  for (int k = 0; k < 400; ++k) {
    Instance in = RandomInstance(rng);
    const ChargeNeed& need = in.need;
    INFO("instance " << k << ": " << in.prices.size() << " intervals, window ["
                     << need.earliest_start_ms << ", " << need.ready_by_ms << "), "
                     << need.max_charge_kw << " kW, " << need.energy_kwh << " kWh, efficiency "
                     << need.efficiency);
    REQUIRE(ValidateNeed(need).ok());
    ChargingSchedule ours = OptimizeSingle(need, in.prices);
    auto lp = SolveSingleWithLp(need, in.prices);
    REQUIRE(lp.ok());
    CHECK(Close(ours.cost, lp->cost));
    CHECK(Close(ours.energy_kwh, lp->energy_kwh, kTol, kTol * need.energy_kwh));
    CHECK(Close(ours.shortfall_kwh, lp->shortfall_kwh, kTol, kTol * need.energy_kwh));
    CHECK(Close(ours.undelivered_cost, lp->undelivered_cost));
    CHECK(Close(ours.immediate_cost, lp->immediate_cost));
    CHECK(ours.energy_kwh <= need.energy_kwh * (1 + kTol));
    REQUIRE(ours.slots.size() == lp->slots.size());
    for (size_t j = 0; j < ours.slots.size(); ++j) {
      CHECK(ours.slots[j].start_ms == lp->slots[j].start_ms);
      CHECK(ours.slots[j].power_kw >= 0);
      CHECK(ours.slots[j].power_kw <= need.max_charge_kw);
    }
    // Never dearer than charging straight away, when both store as much.
    if (ours.shortfall_kwh == 0) CHECK(ours.cost <= ours.immediate_cost + kTol);
    with_shortfall += ours.shortfall_kwh > 0;
    with_price += need.undelivered_price_per_mwh.has_value();
    capped += need.soc_pct.has_value();
  }
  // The instances reach every branch.
  CHECK(with_shortfall > 40);
  CHECK(with_price > 100);
  CHECK(capped > 60);
}

// ---- The shared LP against the single optima, on random instances ----

namespace {

struct SharedInstance {
  std::vector<PriceInterval> prices;
  std::vector<ChargeNeed> needs;
};

SharedInstance RandomShared(std::mt19937_64& rng) {
  SharedInstance in;
  in.prices = RandomPrices(rng, kT0 + static_cast<int64_t>(rng() % 86400) * 1000);
  const int devices = 2 + static_cast<int>(rng() % 3);
  for (int d = 0; d < devices; ++d) {
    in.needs.push_back(RandomNeed(rng, in.prices, in.prices.front().start_ms, EndOf(in.prices)));
  }
  return in;
}

double MustShortfall(const std::vector<ChargingSchedule>& s, const std::vector<ChargeNeed>& n) {
  double sum = 0;
  for (size_t d = 0; d < s.size(); ++d) {
    if (!n[d].undelivered_price_per_mwh) sum += s[d].shortfall_kwh;
  }
  return sum;
}

double Objective(const std::vector<ChargingSchedule>& s) {
  double sum = 0;
  for (const auto& x : s) sum += x.cost + x.undelivered_cost;
  return sum;
}

// The most power drawn together at any instant.
double PeakKw(const std::vector<ChargingSchedule>& s, const std::vector<ChargeNeed>& needs) {
  std::vector<int64_t> cuts;
  std::vector<std::vector<int64_t>> ends;
  for (size_t d = 0; d < s.size(); ++d) {
    ends.push_back(SlotEnds(s[d], needs[d]));
    for (size_t j = 0; j < s[d].slots.size(); ++j) {
      cuts.push_back(s[d].slots[j].start_ms);
      cuts.push_back(ends[d][j]);
    }
  }
  std::sort(cuts.begin(), cuts.end());
  double peak = 0;
  for (size_t k = 0; k + 1 < cuts.size(); ++k) {
    if (cuts[k] == cuts[k + 1]) continue;
    double kw = 0;
    for (size_t d = 0; d < s.size(); ++d) {
      for (size_t j = 0; j < s[d].slots.size(); ++j) {
        if (s[d].slots[j].start_ms <= cuts[k] && ends[d][j] >= cuts[k + 1]) {
          kw += s[d].slots[j].power_kw;
        }
      }
    }
    peak = std::max(peak, kw);
  }
  return peak;
}

}  // namespace

TEST_CASE("a shared limit that never binds gives each device its own optimum", "[unit]") {
  std::mt19937_64 rng(77);
  for (int k = 0; k < 120; ++k) {
    SharedInstance in = RandomShared(rng);
    double sum_kw = 0, single_cost = 0, single_energy = 0;
    std::vector<ChargingSchedule> singles;
    for (const auto& n : in.needs) {
      sum_kw += n.max_charge_kw;
      singles.push_back(OptimizeSingle(n, in.prices));
      single_cost += singles.back().cost;
      single_energy += singles.back().energy_kwh;
    }
    INFO("instance " << k << ": " << in.needs.size() << " devices");
    auto r = OptimizeShared(in.needs, sum_kw + 1, in.prices);
    REQUIRE(r.ok());
    REQUIRE(r->size() == in.needs.size());
    double cost = 0, energy = 0;
    for (size_t d = 0; d < r->size(); ++d) {
      cost += (*r)[d].cost;
      energy += (*r)[d].energy_kwh;
      CHECK(Close((*r)[d].energy_kwh, singles[d].energy_kwh, kTol, kTol * in.needs[d].energy_kwh));
      REQUIRE((*r)[d].slots.size() == singles[d].slots.size());
      CHECK(Close((*r)[d].immediate_cost, singles[d].immediate_cost));
    }
    CHECK(Close(cost, single_cost));
    CHECK(Close(energy, single_energy));
  }
}

TEST_CASE("a binding shared limit is kept at every instant and never lowers the cost", "[unit]") {
  std::mt19937_64 rng(4242);
  int bound = 0;
  for (int k = 0; k < 120; ++k) {
    SharedInstance in = RandomShared(rng);
    double sum_kw = 0;
    std::vector<ChargingSchedule> singles;
    for (const auto& n : in.needs) {
      sum_kw += n.max_charge_kw;
      singles.push_back(OptimizeSingle(n, in.prices));
    }
    const double limit = sum_kw * std::uniform_real_distribution<double>(0.2, 0.8)(rng);
    INFO("instance " << k << ": " << in.needs.size() << " devices, limit " << limit << " kW");
    auto r = OptimizeShared(in.needs, limit, in.prices);
    REQUIRE(r.ok());
    CHECK(PeakKw(*r, in.needs) <= limit * (1 + kTol) + kTol);
    for (size_t d = 0; d < r->size(); ++d) {
      for (const auto& slot : (*r)[d].slots) CHECK(slot.power_kw <= in.needs[d].max_charge_kw);
    }
    // Less room to charge: must-deliver devices store no more, and when
    // they store as much, the whole bill is no smaller.
    const double must_shared = MustShortfall(*r, in.needs);
    const double must_single = MustShortfall(singles, in.needs);
    CHECK(must_shared >= must_single - 1e-6);
    if (Close(must_shared, must_single, 1e-9, 1e-6)) {
      CHECK(Objective(*r) >= Objective(singles) - 1e-9 * std::abs(Objective(singles)) - 1e-9);
    }
    bound += !Close(Objective(*r), Objective(singles), 1e-6, 1e-6) ||
             !Close(must_shared, must_single, 1e-6, 1e-6);
  }
  // The limit changed the answer in a good share of the instances.
  CHECK(bound > 30);
}
