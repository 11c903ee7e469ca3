// Simulated devices: sun position, battery state of charge and its limits,
// PV following the sun and its curtailment, EV charging, flexible load,
// determinism by seed and staying inside the reported range.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "edge_agent/devices/simulated.h"

using derms::edge::ClearSkyFraction;
using derms::edge::Device;
using derms::edge::MakeSimulatedDevice;
using derms::edge::Nameplate;
using derms::edge::PowerRange;
using derms::edge::Reading;
using derms::edge::SolarHour;

namespace {

constexpr int64_t kT0 = 1767225600000;  // 2026-01-01T00:00Z
constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kHourMs = 3'600'000;

// Longitude 0, so SolarHour is the UTC hour.
Nameplate MakeNameplate(derms::v1::DerType type, double discharge_kw, double charge_kw,
                        double capacity_kwh = 0) {
  return Nameplate{type, discharge_kw, charge_kw, capacity_kwh, 0.0, 0.0};
}

Nameplate Battery() { return MakeNameplate(derms::v1::BATTERY, 10, 10, 20); }
Nameplate Pv() { return MakeNameplate(derms::v1::PV, 5, 0); }
Nameplate EvCharger() { return MakeNameplate(derms::v1::EV_CHARGER, 0, 7, 60); }
Nameplate FlexibleLoad() { return MakeNameplate(derms::v1::FLEXIBLE_LOAD, 0, 8); }

std::unique_ptr<Device> Make(const Nameplate& n, uint64_t seed = 7, int64_t start_ms = kT0) {
  auto device = MakeSimulatedDevice(n, seed, start_ms);
  REQUIRE(device != nullptr);
  return device;
}

double Soc(const Device& d) {
  Reading r = d.Read();
  REQUIRE(r.soc_pct.has_value());
  return *r.soc_pct;
}

bool HasAlarm(const Reading& r, const std::string& code) {
  for (const auto& a : r.alarms) {
    if (a.code() == code) return true;
  }
  return false;
}

// SOC change of the test battery for `kw` held for one minute (one-way efficiency 0.95).
double MinuteSocDelta(double kw) {
  double stored_kwh = kw >= 0 ? -kw / 0.95 : -kw * 0.95;
  return 100.0 * stored_kwh / 60.0 / 20.0;
}

}  // namespace

TEST_CASE("solar hour is the UTC hour at longitude 0 and shifts 1 h per 15 degrees",
          "[unit][devices]") {
  CHECK(SolarHour(kT0, 0) == Approx(0.0).margin(1e-9));
  CHECK(SolarHour(kT0 + 12 * kHourMs, 0) == Approx(12.0));
  CHECK(SolarHour(kT0 + 13 * kHourMs + 30 * kMinuteMs, 0) == Approx(13.5));
  CHECK(SolarHour(kT0 + 12 * kHourMs, 15.0) == Approx(13.0));
  CHECK(SolarHour(kT0, -75.0) == Approx(19.0));               // wraps below 0
  CHECK(SolarHour(kT0 + 20 * kHourMs, 90.0) == Approx(2.0));  // wraps above 24
  CHECK(SolarHour(kT0 + 24 * kHourMs, 0) == Approx(0.0).margin(1e-9));
  for (double lon : {-180.0, -90.5, 0.0, 45.0, 179.9}) {
    for (int64_t h = 0; h < 48; h += 5) {
      double s = SolarHour(kT0 + h * kHourMs, lon);
      CHECK(s >= 0.0);
      CHECK(s < 24.0);
    }
  }
}

TEST_CASE("clear-sky PV is 0 at night and peaks at 1 at solar noon", "[unit][devices]") {
  for (double h : {0.0, 3.0, 5.99, 6.0, 18.0, 20.0, 23.9}) {
    INFO("hour " << h);
    CHECK(ClearSkyFraction(h) == 0.0);
  }
  CHECK(ClearSkyFraction(12.0) == Approx(1.0));
  CHECK(ClearSkyFraction(9.0) == Approx(ClearSkyFraction(15.0)));  // symmetric around noon
  double previous = 0;
  for (double h = 6.5; h <= 12.0; h += 0.5) {
    double f = ClearSkyFraction(h);
    CHECK(f > previous);
    CHECK(f <= 1.0);
    previous = f;
  }
}

TEST_CASE("a battery's state of charge follows the power it delivers", "[unit][devices]") {
  auto battery = Make(Battery());
  PowerRange r = battery->Range();
  CHECK(r.min_kw == -10.0);
  CHECK(r.max_kw == 10.0);
  CHECK(battery->BaselineKw() == 0.0);

  double soc0 = Soc(*battery);
  CHECK(soc0 > 5.0);
  CHECK(soc0 < 100.0);
  battery->Step(kT0 + kMinuteMs, 10.0);
  CHECK(battery->Read().active_power_kw == 10.0);
  CHECK(Soc(*battery) == Approx(soc0 + MinuteSocDelta(10.0)));

  double soc1 = Soc(*battery);
  battery->Step(kT0 + 2 * kMinuteMs, -6.0);
  CHECK(battery->Read().active_power_kw == -6.0);
  CHECK(Soc(*battery) == Approx(soc1 + MinuteSocDelta(-6.0)));
}

TEST_CASE("a battery discharging flat out stops at its minimum state of charge",
          "[unit][devices]") {
  auto battery = Make(Battery());
  double previous = Soc(*battery);
  int64_t t = kT0;
  for (int i = 0; i < 12 * 60 && battery->Range().max_kw > 0; ++i) {
    t += kMinuteMs;
    battery->Step(t, 10.0);
    double soc = Soc(*battery);
    CHECK(soc < previous);
    previous = soc;
  }
  // Empty down to the 5 % floor: at most one step's worth below it.
  CHECK(battery->Range().max_kw == 0.0);
  CHECK(battery->Range().min_kw == -10.0);  // it can still charge
  double floor_soc = Soc(*battery);
  CHECK(floor_soc <= 5.0);
  CHECK(floor_soc >= 5.0 + MinuteSocDelta(10.0));
  CHECK(HasAlarm(battery->Read(), "SOC_LOW"));

  // Asked to keep discharging, it delivers nothing and the SOC stays put.
  for (int i = 0; i < 30; ++i) {
    t += kMinuteMs;
    battery->Step(t, 10.0);
    CHECK(battery->Read().active_power_kw == 0.0);
    CHECK(Soc(*battery) == floor_soc);
  }
}

TEST_CASE("a battery charging flat out stops full at 100 %", "[unit][devices]") {
  auto battery = Make(Battery());
  double previous = Soc(*battery);
  int64_t t = kT0;
  for (int i = 0; i < 12 * 60 && battery->Range().min_kw < 0; ++i) {
    t += kMinuteMs;
    battery->Step(t, -10.0);
    double soc = Soc(*battery);
    CHECK(soc > previous);
    previous = soc;
  }
  CHECK(Soc(*battery) == 100.0);
  CHECK(battery->Range().min_kw == 0.0);
  CHECK(battery->Range().max_kw == 10.0);

  for (int i = 0; i < 30; ++i) {
    t += kMinuteMs;
    battery->Step(t, -10.0);
    CHECK(battery->Read().active_power_kw == 0.0);
    CHECK(Soc(*battery) == 100.0);
  }
}

TEST_CASE("a battery's state of charge never leaves 0..100 % whatever it is told",
          "[unit][devices]") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> setpoint(-40.0, 40.0);
  std::uniform_int_distribution<int64_t> step_ms(1'000, 3 * kHourMs);
  auto battery = Make(Battery(), 3);
  int64_t t = kT0;
  for (int i = 0; i < 2000; ++i) {
    t += step_ms(rng);
    battery->Step(t, setpoint(rng));
    double soc = Soc(*battery);
    REQUIRE(soc >= 0.0);
    REQUIRE(soc <= 100.0);
  }
}

TEST_CASE("PV produces nothing at night and something at noon, never above its nameplate",
          "[unit][devices]") {
  auto pv = Make(Pv());
  pv->Step(kT0 + 2 * kHourMs, std::nullopt);
  CHECK(pv->Read().active_power_kw == 0.0);
  CHECK(pv->Range().max_kw == 0.0);

  pv->Step(kT0 + 12 * kHourMs, std::nullopt);
  CHECK(pv->Read().active_power_kw > 0.0);
  CHECK(pv->BaselineKw() == pv->Read().active_power_kw);

  // A whole day in five-minute steps, uncontrolled.
  auto day = Make(Pv(), 21);
  for (int64_t t = kT0; t <= kT0 + 24 * kHourMs; t += 5 * kMinuteMs) {
    day->Step(t, std::nullopt);
    double kw = day->Read().active_power_kw;
    double hour = SolarHour(t, 0);
    INFO("hour " << hour);
    CHECK(kw >= 0.0);
    CHECK(kw <= 5.0);
    if (hour <= 6.0 || hour >= 18.0) CHECK(kw == 0.0);
    if (hour >= 9.0 && hour <= 15.0) CHECK(kw > 0.0);
  }
}

TEST_CASE("a PV setpoint curtails its output and never raises it", "[unit][devices]") {
  auto pv = Make(Pv());
  pv->Step(kT0 + 12 * kHourMs, 1.0);
  CHECK(pv->Read().active_power_kw == Approx(1.0));
  CHECK(pv->Range().max_kw >= 1.0);  // at least 20 % of 5 kW gets through clouds at noon

  pv->Step(kT0 + 12 * kHourMs + kMinuteMs, 0.0);
  CHECK(pv->Read().active_power_kw == 0.0);

  pv->Step(kT0 + 12 * kHourMs + 2 * kMinuteMs, 50.0);
  CHECK(pv->Read().active_power_kw == pv->Range().max_kw);
  CHECK(pv->Read().active_power_kw <= 5.0);

  pv->Step(kT0 + 12 * kHourMs + 3 * kMinuteMs, -3.0);  // PV cannot import
  CHECK(pv->Read().active_power_kw == 0.0);
}

TEST_CASE("an EV charger only imports and the energy it needs falls while charging",
          "[unit][devices]") {
  auto ev = Make(EvCharger());  // 00:00 UTC: a vehicle is plugged in
  REQUIRE(ev->Range().min_kw == -7.0);
  CHECK(ev->Range().max_kw == 0.0);
  CHECK(ev->BaselineKw() == -7.0);

  double previous = Soc(*ev);
  CHECK(previous < 100.0);
  int64_t t = kT0;
  while (ev->Range().min_kw < 0 && t < kT0 + 6 * kHourMs) {
    t += kMinuteMs;
    ev->Step(t, std::nullopt);
    CHECK(ev->Read().active_power_kw == -7.0);
    CHECK(ev->Range().max_kw == 0.0);
    double soc = Soc(*ev);
    CHECK(soc > previous);
    previous = soc;
  }
  // Full before departure: it stops charging.
  CHECK(Soc(*ev) == 100.0);
  CHECK(ev->Range().min_kw == 0.0);
  t += kMinuteMs;
  ev->Step(t, -7.0);
  CHECK(ev->Read().active_power_kw == 0.0);
}

TEST_CASE("an EV charger with no vehicle at midday can do nothing", "[unit][devices]") {
  auto ev = Make(EvCharger(), 7, kT0 + 12 * kHourMs);
  CHECK(ev->Range().min_kw == 0.0);
  CHECK(ev->Range().max_kw == 0.0);
  ev->Step(kT0 + 12 * kHourMs + kMinuteMs, -7.0);
  CHECK(ev->Read().active_power_kw == 0.0);
  CHECK_FALSE(ev->Read().soc_pct.has_value());
}

TEST_CASE("an EV charger never offers export over two days of arrivals and departures",
          "[unit][devices]") {
  auto ev = Make(EvCharger(), 31);
  bool saw_plugged = false, saw_unplugged = false;
  for (int64_t t = kT0; t <= kT0 + 48 * kHourMs; t += 10 * kMinuteMs) {
    ev->Step(t, 5.0);  // asked to export: it cannot
    PowerRange r = ev->Range();
    CHECK(r.max_kw == 0.0);
    CHECK((r.min_kw == -7.0 || r.min_kw == 0.0));
    CHECK(ev->Read().active_power_kw == 0.0);
    if (ev->Read().soc_pct)
      saw_plugged = true;
    else
      saw_unplugged = true;
  }
  CHECK(saw_plugged);
  CHECK(saw_unplugged);
}

TEST_CASE("no simulation exists for an unspecified DER type", "[unit][devices]") {
  Nameplate n = Battery();
  n.type = derms::v1::DER_TYPE_UNSPECIFIED;
  CHECK(MakeSimulatedDevice(n, 1, kT0) == nullptr);
}

TEST_CASE("a flexible load always imports, whatever it is told", "[unit][devices]") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> setpoint(-20.0, 20.0);
  auto load = Make(FlexibleLoad());
  for (int64_t t = kT0; t <= kT0 + 24 * kHourMs; t += 10 * kMinuteMs) {
    std::optional<double> sp;
    if ((t / (10 * kMinuteMs)) % 3 != 0) sp = setpoint(rng);
    load->Step(t, sp);
    CHECK(load->Read().active_power_kw < 0.0);
    CHECK(load->Read().active_power_kw >= -8.0);
    CHECK(load->Range().max_kw < 0.0);
    CHECK(load->BaselineKw() < 0.0);
  }
}

TEST_CASE("the same seed gives the same readings", "[unit][devices]") {
  for (const Nameplate& n : {Battery(), Pv(), EvCharger(), FlexibleLoad()}) {
    INFO("type " << derms::v1::DerType_Name(n.type));
    auto a = Make(n, 99, kT0 + 10 * kHourMs);
    auto b = Make(n, 99, kT0 + 10 * kHourMs);
    for (int i = 1; i <= 200; ++i) {
      int64_t t = kT0 + 10 * kHourMs + i * 5 * kMinuteMs;
      std::optional<double> sp;
      if (i % 4 == 0) sp = 2.0;
      a->Step(t, sp);
      b->Step(t, sp);
      Reading ra = a->Read(), rb = b->Read();
      REQUIRE(ra.active_power_kw == rb.active_power_kw);
      REQUIRE(ra.soc_pct == rb.soc_pct);
      REQUIRE(ra.voltage_v == rb.voltage_v);
      REQUIRE(ra.frequency_hz == rb.frequency_hz);
      REQUIRE(ra.run_time_s == rb.run_time_s);
    }
  }
}

TEST_CASE("different seeds give different simulations", "[unit][devices]") {
  auto a = Make(Battery(), 1);
  auto b = Make(Battery(), 2);
  CHECK(Soc(*a) != Soc(*b));
}

TEST_CASE("no device's output leaves its range, whatever the setpoint", "[unit][devices]") {
  const std::vector<Nameplate> all = {
      Battery(),
      Pv(),
      EvCharger(),
      FlexibleLoad(),
      MakeNameplate(derms::v1::WIND, 50, 0),
      MakeNameplate(derms::v1::GENERATOR, 30, 0),
  };
  std::mt19937 rng(2024);
  std::uniform_real_distribution<double> setpoint(-1000.0, 1000.0);
  for (const Nameplate& n : all) {
    INFO("type " << derms::v1::DerType_Name(n.type));
    auto d = Make(n, 17);
    for (int64_t t = kT0; t <= kT0 + 48 * kHourMs; t += 7 * kMinuteMs) {
      std::optional<double> sp;
      if (rng() % 5 != 0) sp = setpoint(rng);
      PowerRange before = d->Range();
      d->Step(t, sp);
      PowerRange after = d->Range();
      double kw = d->Read().active_power_kw;
      INFO("t " << t << " setpoint " << (sp ? *sp : 0.0) << " kw " << kw);
      // The range in force during the step is the one before it (state of
      // charge, vehicle) or after it (sun, wind, demand at the new time).
      CHECK(kw >= std::min(before.min_kw, after.min_kw));
      CHECK(kw <= std::max(before.max_kw, after.max_kw));
      CHECK(kw >= -n.max_charge_kw);
      CHECK(kw <= n.max_discharge_kw);
      CHECK(after.min_kw <= after.max_kw);
      CHECK(d->BaselineKw() >= after.min_kw);
      CHECK(d->BaselineKw() <= after.max_kw);
    }
  }
}
