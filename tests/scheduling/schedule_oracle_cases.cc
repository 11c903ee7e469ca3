// schedule_oracle_cases: prints random charging instances with the
// optimiser's answers, one JSON object a line, for oracle_scipy.py to solve
// again with scipy's HiGHS and compare. Fixed seed: the same cases every run.
//
//   schedule_oracle_cases [single_count [shared_count [seed]]]
//
// Each line: {"kind": "single" | "shared", "limit_kw": null | kW,
// "prices": [[start_ms, duration_s, price_per_mwh], ...], "needs": [...],
// "results": [{"cost", "energy_kwh", "shortfall_kwh", "undelivered_cost"}]}:
// single cases are answered by OptimizeSingle, shared ones by
// OptimizeShared. Numbers are printed to 17 significant digits, so they
// read back exactly.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cloud_aggregator/scheduling/charging_optimizer.h"

namespace {

using derms::scheduling::ChargeNeed;
using derms::scheduling::ChargingSchedule;
using derms::scheduling::PriceInterval;

constexpr int64_t kT0 = 1'700'006'400'000;  // a whole hour
constexpr double kHourMs = 3.6e6;

std::string Num(double v) { return fmt::format("{:.17g}", v); }
std::string Opt(const std::optional<double>& v) { return v ? Num(*v) : "null"; }

// 5 to 30 minute intervals, sometimes of mixed lengths, in cents per MWh
// (distinct prices far apart next to the solvers' tolerances), a third of
// the series from a few values so that ties are common, some negative.
// One case in twenty is a whole week at 5 minutes.
std::vector<PriceInterval> RandomPrices(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int64_t steps_s[] = {300, 600, 900, 1800};
  const bool week = u(rng) < 0.05;
  const int64_t step_s = week ? 300 : steps_s[rng() % 4];
  const bool mixed = !week && u(rng) < 0.25;
  const bool ties = u(rng) < 0.33;
  const double few[] = {-30, -0.5, 0, 18.25, 60, 60.5, 140};
  const int n = week ? 2016 : 3 + static_cast<int>(rng() % 300);
  int64_t t = kT0 + static_cast<int64_t>(rng() % 7200) * 1000;
  std::vector<PriceInterval> prices;
  for (int i = 0; i < n; ++i) {
    const int64_t len_s = mixed ? steps_s[rng() % 4] : step_s;
    // A daily shape with noise, as wholesale prices have.
    const double shape = 70 + 50 * std::sin(2 * M_PI * static_cast<double>(t - kT0) / 86.4e6);
    const double price =
        ties ? few[rng() % 7] : std::round((shape + 80 * (u(rng) - 0.4)) * 100.0) / 100.0;
    prices.push_back({t, len_s, price});
    t += len_s * 1000;
  }
  return prices;
}

ChargeNeed RandomNeed(std::mt19937_64& rng, const std::vector<PriceInterval>& prices) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int64_t from = prices.front().start_ms;
  const int64_t to = prices.back().start_ms + prices.back().duration_s * 1000;
  std::uniform_int_distribution<int64_t> at(from, to - 1);
  int64_t a = at(rng), b = at(rng);
  if (a > b) std::swap(a, b);
  ChargeNeed n;
  n.earliest_start_ms = a;
  n.ready_by_ms = b + 1;
  n.max_charge_kw = 2 + 48 * u(rng);
  n.efficiency = u(rng) < 0.4 ? 1.0 : 0.75 + 0.25 * u(rng);
  const double window_h = static_cast<double>(n.ready_by_ms - n.earliest_start_ms) / kHourMs;
  n.energy_kwh = std::max(1e-3, (0.01 + 1.3 * u(rng)) * n.max_charge_kw * window_h * n.efficiency);
  if (u(rng) < 0.3) {
    n.capacity_kwh = 5 + 120 * u(rng);
    n.soc_pct = 100 * u(rng);
  }
  if (u(rng) < 0.4) {
    // Clear of every price per MWh stored: at a near tie the solvers'
    // tolerances, not optimality, decide.
    for (int attempt = 0; attempt < 100 && !n.undelivered_price_per_mwh; ++attempt) {
      const double v = -40 + 300 * u(rng);
      bool clear = true;
      for (const auto& p : prices) {
        clear = clear && std::abs(p.price_per_mwh / n.efficiency - v) > 1e-3;
      }
      if (clear) n.undelivered_price_per_mwh = v;
    }
  }
  return n;
}

void Print(const char* kind, const std::optional<double>& limit_kw,
           const std::vector<PriceInterval>& prices, const std::vector<ChargeNeed>& needs,
           const std::vector<ChargingSchedule>& results) {
  std::string line =
      fmt::format("{{\"kind\": \"{}\", \"limit_kw\": {}, \"prices\": [", kind, Opt(limit_kw));
  for (size_t i = 0; i < prices.size(); ++i) {
    line += fmt::format("{}[{}, {}, {}]", i ? ", " : "", prices[i].start_ms, prices[i].duration_s,
                        Num(prices[i].price_per_mwh));
  }
  line += "], \"needs\": [";
  for (size_t d = 0; d < needs.size(); ++d) {
    const ChargeNeed& n = needs[d];
    line += fmt::format(
        "{}{{\"max_charge_kw\": {}, \"energy_kwh\": {}, \"earliest_start_ms\": {}, "
        "\"ready_by_ms\": {}, \"soc_pct\": {}, \"capacity_kwh\": {}, \"efficiency\": {}, "
        "\"undelivered_price_per_mwh\": {}}}",
        d ? ", " : "", Num(n.max_charge_kw), Num(n.energy_kwh), n.earliest_start_ms, n.ready_by_ms,
        Opt(n.soc_pct), Opt(n.capacity_kwh), Num(n.efficiency), Opt(n.undelivered_price_per_mwh));
  }
  line += "], \"results\": [";
  for (size_t d = 0; d < results.size(); ++d) {
    const ChargingSchedule& s = results[d];
    line += fmt::format(
        "{}{{\"cost\": {}, \"energy_kwh\": {}, \"shortfall_kwh\": {}, \"undelivered_cost\": {}}}",
        d ? ", " : "", Num(s.cost), Num(s.energy_kwh), Num(s.shortfall_kwh),
        Num(s.undelivered_cost));
  }
  line += "]}\n";
  std::fputs(line.c_str(), stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const int singles = argc > 1 ? std::atoi(argv[1]) : 300;
  const int shared = argc > 2 ? std::atoi(argv[2]) : 100;
  std::mt19937_64 rng(argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 8675309);
  for (int k = 0; k < singles; ++k) {
    auto prices = RandomPrices(rng);
    ChargeNeed need = RandomNeed(rng, prices);
    if (auto s = derms::scheduling::ValidateNeed(need); !s.ok()) {
      fmt::print(stderr, "schedule_oracle_cases: {}\n", s.ToString());
      return 1;
    }
    Print("single", std::nullopt, prices, {need},
          {derms::scheduling::OptimizeSingle(need, prices)});
  }
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int k = 0; k < shared; ++k) {
    auto prices = RandomPrices(rng);
    std::vector<ChargeNeed> needs;
    double sum_kw = 0;
    for (int d = 2 + static_cast<int>(rng() % 4); d > 0; --d) {
      needs.push_back(RandomNeed(rng, prices));
      sum_kw += needs.back().max_charge_kw;
    }
    // Half the cases with a limit that binds, half with one that may not.
    const double limit_kw = sum_kw * (u(rng) < 0.5 ? 0.15 + 0.6 * u(rng) : 0.8 + 0.4 * u(rng));
    auto r = derms::scheduling::OptimizeShared(needs, limit_kw, prices);
    if (!r.ok()) {
      fmt::print(stderr, "schedule_oracle_cases: shared case {}: {}\n", k, r.status().ToString());
      return 1;
    }
    Print("shared", limit_kw, prices, needs, *r);
  }
  return 0;
}
