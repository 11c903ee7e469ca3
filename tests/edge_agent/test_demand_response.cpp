// Demand-response devices: a C&I load's blocks respect their minimum off and
// on times and rebound after a curtailment; a thermostat's room stays in the
// comfort band whatever it is told, and what it reports it can do is what it
// then does.
#include <catch2/catch.hpp>
#include <cmath>

#include "edge_agent/devices/demand_response.h"
#include "edge_agent/devices/simulated.h"

using namespace derms::edge;

namespace {

// Noon at longitude 0 (solar time = UTC): the working day, the afternoon heat.
constexpr int64_t kNoon = 1'700'006'400'000 - 1'700'006'400'000 % 86'400'000 + 12 * 3'600'000;

Nameplate Load(derms::v1::DerType type, double max_charge_kw) {
  Nameplate n;
  n.type = type;
  n.max_charge_kw = max_charge_kw;
  return n;
}

}  // namespace

TEST_CASE("a C&I load sheds whole blocks and never below what must keep running",
          "[demand_response]") {
  CiLoadOptions o;  // 4 blocks of 15 % of 200 kW = 30 kW each; 80 kW base at full day
  auto load = MakeCiLoad(Load(derms::v1::CI_LOAD, 200), o, kNoon);
  load->Step(kNoon, std::nullopt);
  CHECK(load->Read().active_power_kw == Approx(-200));
  PowerRange r = load->Range();
  CHECK(r.min_kw == Approx(-200));
  CHECK(r.max_kw == Approx(-80));  // every block may be shed: the base stays
  // Asked for 150 kW: two blocks go (140 kW), never more than asked.
  load->Step(kNoon + 1000, -150.0);
  CHECK(CiLoadStateOf(*load)->blocks_on == 2);
  CHECK(load->Read().active_power_kw == Approx(-140));
}

TEST_CASE("a shed block stays off for min_off_s and a restarted one runs for min_on_s",
          "[demand_response]") {
  CiLoadOptions o;
  o.min_off_s = 300;
  o.min_on_s = 900;
  auto load = MakeCiLoad(Load(derms::v1::CI_LOAD, 200), o, kNoon);
  int64_t t = kNoon;
  load->Step(t, -80.0);  // shed all four
  CHECK(CiLoadStateOf(*load)->blocks_on == 0);
  // Control ends at once: the blocks may not restart before 300 s.
  for (int s = 1; s < 300; ++s) {
    load->Step(t + s * 1000, std::nullopt);
    REQUIRE(CiLoadStateOf(*load)->blocks_on == 0);
    REQUIRE(load->Range().min_kw == Approx(-80));  // nothing may be added back yet
  }
  load->Step(t + 300 * 1000, std::nullopt);
  CHECK(CiLoadStateOf(*load)->blocks_on == 4);
  t += 300 * 1000;
  // Shedding again at once is refused: they must run 900 s first.
  for (int s = 1; s < 900; s += 10) {
    load->Step(t + s * 1000, -80.0);
    REQUIRE(CiLoadStateOf(*load)->blocks_on == 4);
    REQUIRE(load->Range().max_kw == Approx(-200).margin(1e-3));  // nothing sheddable reported
  }
  load->Step(t + 900 * 1000, -80.0);
  CHECK(CiLoadStateOf(*load)->blocks_on == 0);
}

TEST_CASE("after a curtailment a C&I load draws more than usual until the work is caught up",
          "[demand_response]") {
  CiLoadOptions o;
  o.min_off_s = 0;
  o.min_on_s = 0;
  o.rebound_share = 0.6;
  o.rebound_peak_share = 0.5;
  auto load = MakeCiLoad(Load(derms::v1::CI_LOAD, 200), o, kNoon);
  int64_t t = kNoon;
  // One hour with two blocks (60 kW) shed: 60 kWh not done, 36 kWh to catch up.
  for (int s = 0; s <= 3600; ++s) load->Step(t + s * 1000, -140.0);
  CHECK(CiLoadStateOf(*load)->deferred_kwh == Approx(36).epsilon(0.01));
  t += 3600 * 1000;
  double extra_kwh = 0;
  double peak_kw = 0;
  for (int s = 1; s <= 4 * 3600; ++s) {
    load->Step(t + s * 1000, std::nullopt);
    CiLoadState state = *CiLoadStateOf(*load);
    double draw_kw = -load->Read().active_power_kw;
    // Every block back and the catch-up on top of the usual demand.
    REQUIRE(state.blocks_on == 4);
    REQUIRE(draw_kw == Approx(state.base_kw + 120 + state.rebound_kw));
    REQUIRE(state.rebound_kw >= 0);
    extra_kwh += state.rebound_kw / 3600.0;
    peak_kw = std::max(peak_kw, state.rebound_kw);
  }
  CHECK(extra_kwh == Approx(36).epsilon(0.01));
  CHECK(peak_kw == Approx(60));  // half of the four blocks' 120 kW
  CHECK(CiLoadStateOf(*load)->deferred_kwh == Approx(0).margin(1e-9));
  CHECK(CiLoadStateOf(*load)->rebound_kw == 0);
}

TEST_CASE("a thermostat keeps the room in its comfort band whatever it is told",
          "[demand_response]") {
  ThermostatOptions o;  // 22 C +- 1.5, 30 C outside: it cools
  auto ac = MakeThermostat(Load(derms::v1::THERMOSTAT, 4), o, kNoon);
  int64_t t = kNoon;
  // Alternating hours of "switch off" and "run flat out", stepped each 10 s.
  double lowest = 100, highest = -100;
  for (int s = 0; s <= 6 * 3600; s += 10) {
    bool curtail = (s / 3600) % 2 == 0;
    ac->Step(t + s * 1000LL, curtail ? 0.0 : -4.0);
    double c = *IndoorTemperatureOf(*ac);
    lowest = std::min(lowest, c);
    highest = std::max(highest, c);
  }
  CHECK(highest <= 23.5 + 1e-6);
  CHECK(lowest >= 20.5 - 1e-6);
  // It used the band: curtailed it warms to the top edge, pushed it cools to the bottom.
  CHECK(highest >= 23.4);
  CHECK(lowest <= 20.6);
}

TEST_CASE("a thermostat reports the flexibility the band leaves and delivers it",
          "[demand_response]") {
  ThermostatOptions o;
  auto ac = MakeThermostat(Load(derms::v1::THERMOSTAT, 4), o, kNoon);
  int64_t t = kNoon;
  ac->Step(t, std::nullopt);
  // At the set temperature it can both shed and add: the range spans its draw.
  PowerRange r = ac->Range();
  double natural_kw = ac->BaselineKw();
  CHECK(r.min_kw < natural_kw);
  CHECK(r.max_kw > natural_kw);
  CHECK(r.max_kw == Approx(0));  // it may switch off for a while
  CHECK(ac->Read().soc_pct.value() == Approx(50).margin(1));
  // Curtailed until the room reaches the top of the band: the least it may
  // draw rises to what holds the edge, and it reports that.
  int s = 0;
  for (; s < 4 * 3600; s += 10) {
    PowerRange before = ac->Range();
    ac->Step(t + s * 1000LL, 0.0);
    // It draws what it said it could go down to, never less.
    REQUIRE(-ac->Read().active_power_kw == Approx(-before.max_kw).margin(1e-3));
    if (*IndoorTemperatureOf(*ac) >= 23.5 - 1e-3) break;
  }
  REQUIRE(*IndoorTemperatureOf(*ac) >= 23.49);
  r = ac->Range();
  CHECK(r.max_kw < -0.5);  // must now run to hold 23.5 C with 30 C outside
  CHECK(ac->Read().soc_pct.value() == Approx(0).margin(1));
  // The aggregator's setpoints in that range are applied as is.
  double mid_kw = (r.min_kw + r.max_kw) / 2;
  ac->Step(t + (s + 10) * 1000LL, mid_kw);
  CHECK(ac->Read().active_power_kw == Approx(mid_kw).margin(0.05));
  // Uncontrolled again, it draws more than usual to get back to 22 C: a rebound.
  ac->Step(t + (s + 20) * 1000LL, std::nullopt);
  double rebound_kw = -ac->Read().active_power_kw;
  CHECK(rebound_kw > -natural_kw);
}

TEST_CASE("a heat pump in winter heats and keeps the same band", "[demand_response]") {
  ThermostatOptions o;
  o.outdoor_mean_c = 0;
  o.outdoor_swing_c = 4;
  auto hp = MakeThermostat(Load(derms::v1::THERMOSTAT, 6), o, kNoon);
  for (int s = 0; s <= 3 * 3600; s += 10) {
    hp->Step(kNoon + s * 1000LL, (s / 1800) % 2 == 0 ? 0.0 : -6.0);
    double c = *IndoorTemperatureOf(*hp);
    REQUIRE(c <= 23.5 + 1e-6);
    REQUIRE(c >= 20.5 - 1e-6);
  }
  hp->Step(kNoon + 4 * 3600 * 1000LL, std::nullopt);
  CHECK(hp->Read().active_power_kw < 0);  // heating draws power
}

TEST_CASE("demand-response options are validated, naming the field and the rule",
          "[demand_response]") {
  CHECK(CiLoadOptions{}.Validate().ok());
  CHECK(ThermostatOptions{}.Validate().ok());
  CiLoadOptions c;
  c.blocks = 8;
  c.block_share = 0.2;
  CHECK(c.Validate().message() ==
        "ci_load.blocks 8 x block_share 0.2 is more than the whole load (1)");
  c = {};
  c.min_on_s = -1;
  CHECK(c.Validate().message() == "ci_load.min_on_s -1 outside [0, 86400]");
  ThermostatOptions t;
  t.comfort_band_c = 0;
  CHECK(t.Validate().message() == "thermostat.comfort_band_c 0 outside [0.2, 10]");
  t = {};
  t.initial_indoor_c = 30;
  CHECK(t.Validate().message().find("thermostat.initial_indoor_c 30") == 0);
}

TEST_CASE("the simulated device for CI_LOAD and THERMOSTAT is the demand-response model",
          "[demand_response]") {
  auto ci = MakeSimulatedDevice(Load(derms::v1::CI_LOAD, 200), 1, kNoon);
  REQUIRE(ci);
  CHECK(CiLoadStateOf(*ci));
  auto th = MakeSimulatedDevice(Load(derms::v1::THERMOSTAT, 4), 1, kNoon);
  REQUIRE(th);
  CHECK(IndoorTemperatureOf(*th));
}
