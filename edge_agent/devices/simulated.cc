#include "edge_agent/devices/simulated.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "edge_agent/devices/demand_response.h"

namespace derms::edge {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kNominalVoltageV = 240.0;
constexpr double kNominalFrequencyHz = 60.0;

// State common to every simulation: time, power, noise.
class SimulatedDevice : public Device {
 public:
  SimulatedDevice(const Nameplate& nameplate, uint64_t seed, int64_t start_ms)
      : nameplate_(nameplate), rng_(seed), last_ms_(start_ms) {}

  double BaselineKw() const override {
    return std::clamp(Natural(), Range().min_kw, Range().max_kw);
  }

  void Step(int64_t now_ms, std::optional<double> setpoint_kw) override {
    double dt_s = std::max<int64_t>(0, now_ms - last_ms_) / 1000.0;
    last_ms_ = std::max(last_ms_, now_ms);
    Evolve(dt_s);
    PowerRange r = Range();
    power_kw_ = std::clamp(setpoint_kw ? *setpoint_kw : Natural(), r.min_kw, r.max_kw);
    Integrate(dt_s);
    if (power_kw_ != 0) run_time_s_ += dt_s;
  }

  Reading Read() const override {
    Reading r;
    r.active_power_kw = power_kw_;
    r.reactive_power_kvar = 0.05 * power_kw_;
    r.voltage_v = kNominalVoltageV * (1.0 + 0.01 * std::sin(last_ms_ / 3.6e6)) +
                  0.004 * kNominalVoltageV * power_kw_ / std::max(1.0, Rating());
    r.frequency_hz = kNominalFrequencyHz + 0.01 * std::sin(last_ms_ / 7.0e4);
    r.run_time_s = run_time_s_;
    AddState(&r);
    return r;
  }

 protected:
  // The output the device seeks with no control.
  virtual double Natural() const = 0;
  // Weather, vehicles, demand: what changes by itself over `dt_s`.
  virtual void Evolve(double /*dt_s*/) {}
  // Energy bookkeeping once power_kw_ is set for the step.
  virtual void Integrate(double /*dt_s*/) {}
  virtual void AddState(Reading* /*r*/) const {}

  double Rating() const { return std::max(nameplate_.max_discharge_kw, nameplate_.max_charge_kw); }
  double SolarHourNow() const { return SolarHour(last_ms_, nameplate_.longitude); }
  // A mean-reverting random walk step (Ornstein-Uhlenbeck), scaled by time.
  double Walk(double x, double mean, double spread, double dt_s, double tau_s) {
    double a = std::exp(-dt_s / tau_s);
    std::normal_distribution<double> n(0.0, 1.0);
    return mean + (x - mean) * a + spread * std::sqrt(1 - a * a) * n(rng_);
  }
  static derms::v1::Alarm MakeAlarm(const char* code, derms::v1::Severity s, const char* text) {
    derms::v1::Alarm a;
    a.set_code(code);
    a.set_severity(s);
    a.set_message(text);
    return a;
  }

  Nameplate nameplate_;
  std::mt19937_64 rng_;
  int64_t last_ms_;
  double power_kw_ = 0;
  double run_time_s_ = 0;
};

class Battery : public SimulatedDevice {
 public:
  Battery(const Nameplate& n, uint64_t seed, int64_t start_ms)
      : SimulatedDevice(n, seed, start_ms) {
    soc_pct_ = std::uniform_real_distribution<double>(35, 75)(rng_);
  }
  PowerRange Range() const override {
    return {soc_pct_ < kMaxSoc ? -nameplate_.max_charge_kw : 0.0,
            soc_pct_ > kMinSoc ? nameplate_.max_discharge_kw : 0.0};
  }

 protected:
  double Natural() const override { return 0.0; }  // idle unless told otherwise
  void Integrate(double dt_s) override {
    double cap = std::max(0.1, nameplate_.energy_capacity_kwh);
    double stored_kwh = power_kw_ >= 0 ? -power_kw_ / kEfficiency : -power_kw_ * kEfficiency;
    soc_pct_ = std::clamp(soc_pct_ + 100.0 * stored_kwh * dt_s / 3600.0 / cap, 0.0, 100.0);
  }
  void AddState(Reading* r) const override {
    r->soc_pct = soc_pct_;
    if (soc_pct_ <= kMinSoc) {
      r->alarms.push_back(MakeAlarm("SOC_LOW", derms::v1::WARNING, "at minimum state of charge"));
    }
  }

 private:
  static constexpr double kMinSoc = 5.0;
  static constexpr double kMaxSoc = 100.0;
  static constexpr double kEfficiency = 0.95;  // one way
  double soc_pct_;
};

class Pv : public SimulatedDevice {
 public:
  using SimulatedDevice::SimulatedDevice;
  PowerRange Range() const override { return {0.0, Available()}; }

 protected:
  double Natural() const override { return Available(); }
  void Evolve(double dt_s) override {
    cloud_ = std::clamp(Walk(cloud_, 0.85, 0.25, dt_s, 1800.0), 0.2, 1.0);
  }

 private:
  double Available() const {
    return nameplate_.max_discharge_kw * ClearSkyFraction(SolarHourNow()) * cloud_;
  }
  double cloud_ = 0.9;  // fraction of clear-sky irradiance getting through
};

class Wind : public SimulatedDevice {
 public:
  Wind(const Nameplate& n, uint64_t seed, int64_t start_ms) : SimulatedDevice(n, seed, start_ms) {
    speed_ms_ = std::uniform_real_distribution<double>(4, 10)(rng_);
  }
  PowerRange Range() const override { return {0.0, Available()}; }

 protected:
  double Natural() const override { return Available(); }
  void Evolve(double dt_s) override {
    speed_ms_ = std::clamp(Walk(speed_ms_, 7.5, 3.0, dt_s, 3600.0), 0.0, 30.0);
  }

 private:
  // A generic turbine: cut-in 3 m/s, rated 12 m/s, cut-out 25 m/s.
  double Available() const {
    if (speed_ms_ < 3.0 || speed_ms_ >= 25.0) return 0.0;
    double f = std::min(1.0, (std::pow(speed_ms_, 3) - 27.0) / (1728.0 - 27.0));
    return nameplate_.max_discharge_kw * f;
  }
  double speed_ms_;
};

class EvCharger : public SimulatedDevice {
 public:
  EvCharger(const Nameplate& n, uint64_t seed, int64_t start_ms)
      : SimulatedDevice(n, seed, start_ms) {
    arrive_hour_ = std::uniform_real_distribution<double>(16.5, 20.0)(rng_);
    depart_hour_ = std::uniform_real_distribution<double>(6.0, 8.5)(rng_);
    if (IsWindow(SolarHourNow())) PlugIn();
  }
  PowerRange Range() const override {
    return {plugged_ && needed_kwh_ > 0 ? -nameplate_.max_charge_kw : 0.0, 0.0};
  }

 protected:
  double Natural() const override { return Range().min_kw; }  // charge flat out until full
  void Evolve(double) override {
    bool window = IsWindow(SolarHourNow());
    if (window && !plugged_) PlugIn();
    if (!window && plugged_) plugged_ = false;
  }
  void Integrate(double dt_s) override {
    needed_kwh_ = std::max(0.0, needed_kwh_ + power_kw_ * kEfficiency * dt_s / 3600.0);
  }
  void AddState(Reading* r) const override {
    if (!plugged_) return;
    double cap = std::max(1.0, nameplate_.energy_capacity_kwh);
    r->soc_pct = std::clamp(100.0 * (1.0 - needed_kwh_ / cap), 0.0, 100.0);
  }

 private:
  bool IsWindow(double h) const { return h >= arrive_hour_ || h < depart_hour_; }
  void PlugIn() {
    plugged_ = true;
    double cap = std::max(1.0, nameplate_.energy_capacity_kwh);
    needed_kwh_ = std::uniform_real_distribution<double>(0.15, 0.6)(rng_) * cap;
  }
  static constexpr double kEfficiency = 0.92;
  double arrive_hour_;
  double depart_hour_;
  bool plugged_ = false;
  double needed_kwh_ = 0;  // energy still wanted by departure
};

class FlexibleLoad : public SimulatedDevice {
 public:
  using SimulatedDevice::SimulatedDevice;
  // Can shed to 30 % of its demand or take up to its rating (pre-cooling, pumping).
  PowerRange Range() const override { return {-nameplate_.max_charge_kw, -0.3 * Demand()}; }

 protected:
  double Natural() const override { return -Demand(); }

 private:
  // A residential double-peak shape between 35 % and 85 % of the rating.
  double Demand() const {
    double h = SolarHourNow();
    double morning = std::exp(-std::pow((h - 7.5) / 1.5, 2));
    double evening = std::exp(-std::pow((h - 19.0) / 2.5, 2));
    return nameplate_.max_charge_kw * (0.35 + 0.3 * morning + 0.45 * evening);
  }
};

class Generator : public SimulatedDevice {
 public:
  using SimulatedDevice::SimulatedDevice;
  PowerRange Range() const override { return {0.0, nameplate_.max_discharge_kw}; }

 protected:
  double Natural() const override { return 0.0; }  // standby until dispatched
};

}  // namespace

double SolarHour(int64_t now_ms, double longitude) {
  double h = std::fmod(now_ms / 3.6e6 + longitude / 15.0, 24.0);
  return h < 0 ? h + 24.0 : h;
}

double ClearSkyFraction(double solar_hour) {
  if (solar_hour <= 6.0 || solar_hour >= 18.0) return 0.0;
  return std::pow(std::sin(kPi * (solar_hour - 6.0) / 12.0), 1.5);
}

std::unique_ptr<Device> MakeSimulatedDevice(const Nameplate& n, uint64_t seed, int64_t start_ms) {
  switch (n.type) {
    case derms::v1::BATTERY:
      return std::make_unique<Battery>(n, seed, start_ms);
    case derms::v1::PV:
      return std::make_unique<Pv>(n, seed, start_ms);
    case derms::v1::WIND:
      return std::make_unique<Wind>(n, seed, start_ms);
    case derms::v1::EV_CHARGER:
      return std::make_unique<EvCharger>(n, seed, start_ms);
    case derms::v1::FLEXIBLE_LOAD:
      return std::make_unique<FlexibleLoad>(n, seed, start_ms);
    case derms::v1::GENERATOR:
      return std::make_unique<Generator>(n, seed, start_ms);
    case derms::v1::CI_LOAD:
      return MakeCiLoad(n, CiLoadOptions{}, start_ms);
    case derms::v1::THERMOSTAT:
      return MakeThermostat(n, ThermostatOptions{}, start_ms);
    default:
      return nullptr;
  }
}

}  // namespace derms::edge
