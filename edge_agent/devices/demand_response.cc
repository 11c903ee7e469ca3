#include "edge_agent/devices/demand_response.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "edge_agent/devices/simulated.h"

namespace derms::edge {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kNominalVoltageV = 400.0;  // three-phase commercial supply
constexpr double kNominalFrequencyHz = 60.0;

Status Invalid(std::string message) { return Status::Error("invalid_value", std::move(message)); }

Status InRange(const char* field, double v, double lo, double hi) {
  if (!std::isfinite(v) || v < lo || v > hi) {
    return Invalid(fmt::format("{} {} outside [{}, {}]", field, v, lo, hi));
  }
  return Status::Ok();
}

class CiLoad : public Device {
 public:
  CiLoad(const Nameplate& n, const CiLoadOptions& o, int64_t start_ms)
      : nameplate_(n), o_(o), last_ms_(start_ms) {
    block_kw_ = o.block_share * n.max_charge_kw;
    base_max_kw_ = std::max(0.0, n.max_charge_kw - o.blocks * block_kw_);
    // Every block running, and long enough to be shed at once.
    blocks_.assign(static_cast<size_t>(o.blocks), Block{true, start_ms - o.min_on_s * 1000});
    base_kw_ = Base();
    power_kw_ = -(base_kw_ + o.blocks * block_kw_);
  }

  PowerRange Range() const override {
    int on_locked = 0, off_locked = 0;
    Count(&on_locked, &off_locked);
    double least = base_kw_ + on_locked * block_kw_;
    double most = base_kw_ + (o_.blocks - off_locked) * block_kw_ + ReboundAvailable(off_locked);
    return {-most, -least};
  }

  double BaselineKw() const override {
    int on_locked = 0, off_locked = 0;
    Count(&on_locked, &off_locked);
    return -(base_kw_ + (o_.blocks - off_locked) * block_kw_ + ReboundAvailable(off_locked));
  }

  void Step(int64_t now_ms, std::optional<double> setpoint_kw) override {
    double dt_s = std::max<int64_t>(0, now_ms - last_ms_) / 1000.0;
    last_ms_ = std::max(last_ms_, now_ms);
    base_kw_ = Base();
    int on_locked = 0, off_locked = 0;
    Count(&on_locked, &off_locked);
    int target = o_.blocks - off_locked;  // uncontrolled: all that may run
    rebound_kw_ = 0;
    if (setpoint_kw) {
      // As many blocks as keep the draw at or under the setpoint's.
      double room_kw = -*setpoint_kw - base_kw_;
      target = static_cast<int>(std::floor(room_kw / block_kw_ + 1e-9));
    } else if (dt_s > 0) {
      rebound_kw_ = std::min(ReboundAvailable(off_locked), deferred_kwh_ * 3600.0 / dt_s);
    }
    target = std::clamp(target, on_locked, o_.blocks - off_locked);
    Switch(target);
    int on = BlocksOn();
    // Work not done while shed is partly caught up later.
    deferred_kwh_ += o_.rebound_share * (o_.blocks - on) * block_kw_ * dt_s / 3600.0;
    deferred_kwh_ = std::max(0.0, deferred_kwh_ - rebound_kw_ * dt_s / 3600.0);
    power_kw_ = -(base_kw_ + on * block_kw_ + rebound_kw_);
    if (power_kw_ != 0) run_time_s_ += dt_s;
  }

  Reading Read() const override {
    Reading r;
    r.active_power_kw = power_kw_;
    r.reactive_power_kvar = 0.3 * power_kw_;  // motors: power factor about 0.96
    r.voltage_v = kNominalVoltageV * (1.0 + 0.01 * std::sin(last_ms_ / 3.6e6));
    r.frequency_hz = kNominalFrequencyHz + 0.01 * std::sin(last_ms_ / 7.0e4);
    r.run_time_s = run_time_s_;
    return r;
  }

  CiLoadState State() const { return {BlocksOn(), base_kw_, rebound_kw_, deferred_kwh_}; }

 private:
  struct Block {
    bool on;
    int64_t since_ms;  // last switched
  };

  // Base load: a working day (07:00 to 19:00 solar time) at full, nights at 60 %.
  double Base() const {
    double h = SolarHour(last_ms_, nameplate_.longitude);
    double day = 0.5 * (std::tanh((h - 7.0) * 2.0) - std::tanh((h - 19.0) * 2.0));
    return base_max_kw_ * (0.6 + 0.4 * day);
  }
  // What catching up may add now: none without deferred work, and only on
  // the blocks allowed to run (`off_locked` must stay off).
  double ReboundAvailable(int off_locked) const {
    return deferred_kwh_ > 0 ? o_.rebound_peak_share * (o_.blocks - off_locked) * block_kw_ : 0.0;
  }
  int BlocksOn() const {
    return static_cast<int>(
        std::count_if(blocks_.begin(), blocks_.end(), [](const Block& b) { return b.on; }));
  }
  // Blocks that may not be switched now: on within min_on_s, off within min_off_s.
  void Count(int* on_locked, int* off_locked) const {
    for (const auto& b : blocks_) {
      int64_t held_ms = last_ms_ - b.since_ms;
      if (b.on && held_ms < o_.min_on_s * 1000) ++*on_locked;
      if (!b.on && held_ms < o_.min_off_s * 1000) ++*off_locked;
    }
  }
  // Sheds the longest-running free blocks or restarts the longest-stopped
  // free ones until `target` run. REQUIRES: target reachable (Count).
  void Switch(int target) {
    int on = BlocksOn();
    while (on != target) {
      bool shed = on > target;
      Block* pick = nullptr;
      for (auto& b : blocks_) {
        int64_t held_ms = last_ms_ - b.since_ms;
        bool free = b.on ? held_ms >= o_.min_on_s * 1000 : held_ms >= o_.min_off_s * 1000;
        if (b.on == shed && free && (!pick || b.since_ms < pick->since_ms)) pick = &b;
      }
      if (!pick) return;
      pick->on = !shed;
      pick->since_ms = last_ms_;
      on += shed ? -1 : 1;
    }
  }

  Nameplate nameplate_;
  CiLoadOptions o_;
  int64_t last_ms_;
  double block_kw_ = 0;
  double base_max_kw_ = 0;
  std::vector<Block> blocks_;
  double base_kw_ = 0;
  double rebound_kw_ = 0;
  double deferred_kwh_ = 0;
  double power_kw_ = 0;
  double run_time_s_ = 0;
};

class Thermostat : public Device {
 public:
  Thermostat(const Nameplate& n, const ThermostatOptions& o, int64_t start_ms)
      : nameplate_(n), o_(o), last_ms_(start_ms) {
    indoor_c_ = std::isnan(o.initial_indoor_c) ? o.setpoint_c : o.initial_indoor_c;
    power_kw_ = -Natural(o.horizon_s);
  }

  PowerRange Range() const override {
    auto [least, most] = Bounds(o_.horizon_s);
    return {-most, -least};
  }
  double BaselineKw() const override { return -Natural(o_.horizon_s); }

  void Step(int64_t now_ms, std::optional<double> setpoint_kw) override {
    double dt_s = std::max<int64_t>(0, now_ms - last_ms_) / 1000.0;
    last_ms_ = std::max(last_ms_, now_ms);
    // The bound must hold over the step itself, however long it is.
    double horizon_s = std::max(o_.horizon_s, dt_s);
    auto [least, most] = Bounds(horizon_s);
    double draw_kw = setpoint_kw ? std::clamp(-*setpoint_kw, least, most) : Natural(horizon_s);
    indoor_c_ = After(draw_kw, dt_s);
    power_kw_ = -draw_kw;
    if (draw_kw > 0) run_time_s_ += dt_s;
  }

  Reading Read() const override {
    Reading r;
    r.active_power_kw = power_kw_;
    r.reactive_power_kvar = 0.2 * power_kw_;
    r.voltage_v = 240.0 * (1.0 + 0.01 * std::sin(last_ms_ / 3.6e6));
    r.frequency_hz = kNominalFrequencyHz + 0.01 * std::sin(last_ms_ / 7.0e4);
    r.run_time_s = run_time_s_;
    // Where the room sits in the band: 100 at the edge the compressor drives
    // it to (it can rest longest), 0 at the edge where it must run.
    double lo = o_.setpoint_c - o_.comfort_band_c, hi = o_.setpoint_c + o_.comfort_band_c;
    double pos = Cooling() ? (hi - indoor_c_) / (hi - lo) : (indoor_c_ - lo) / (hi - lo);
    r.soc_pct = std::clamp(100.0 * pos, 0.0, 100.0);
    if (pos <= 0.01) {
      derms::v1::Alarm a;
      a.set_code("COMFORT_EDGE");
      a.set_severity(derms::v1::INFO);
      a.set_message(fmt::format("indoor {:.2f} C at the comfort band's edge: no more curtailment",
                                indoor_c_));
      r.alarms.push_back(std::move(a));
    }
    return r;
  }

  double indoor_c() const { return indoor_c_; }

 private:
  double Outdoor() const {
    double h = SolarHour(last_ms_, nameplate_.longitude);
    return o_.outdoor_mean_c + o_.outdoor_swing_c * std::cos(2 * kPi * (h - 15.0) / 24.0);
  }
  bool Cooling() const { return Outdoor() > o_.setpoint_c; }
  // Heat added to the room per kW drawn: negative when cooling.
  double HeatPerKw() const { return (Cooling() ? -1.0 : 1.0) * o_.cop; }
  double TauS() const { return o_.resistance_c_per_kw * o_.capacitance_kwh_per_c * 3600.0; }
  // Indoor temperature after `dt_s` drawing `draw_kw` (exact for the RC model).
  double After(double draw_kw, double dt_s) const {
    double eq = Outdoor() + HeatPerKw() * draw_kw * o_.resistance_c_per_kw;
    return eq + (indoor_c_ - eq) * std::exp(-dt_s / TauS());
  }
  // The draw that brings the room to `target_c` in `horizon_s` (unclamped).
  double DrawFor(double target_c, double horizon_s) const {
    double a = std::exp(-horizon_s / TauS());
    double eq = (target_c - indoor_c_ * a) / (1.0 - a);
    return (eq - Outdoor()) / (HeatPerKw() * o_.resistance_c_per_kw);
  }
  // Least and most draw that keep the room in the band for `horizon_s`.
  std::pair<double, double> Bounds(double horizon_s) const {
    double lo = o_.setpoint_c - o_.comfort_band_c, hi = o_.setpoint_c + o_.comfort_band_c;
    // Drawing more moves the room toward the edge the compressor drives it to.
    double least = DrawFor(Cooling() ? hi : lo, horizon_s);
    double most = DrawFor(Cooling() ? lo : hi, horizon_s);
    double rated = nameplate_.max_charge_kw;
    least = std::clamp(least, 0.0, rated);
    most = std::clamp(most, least, rated);
    return {least, most};
  }
  // Uncontrolled: back to the set temperature, within what the band allows.
  double Natural(double horizon_s) const {
    auto [least, most] = Bounds(horizon_s);
    return std::clamp(DrawFor(o_.setpoint_c, horizon_s), least, most);
  }

  Nameplate nameplate_;
  ThermostatOptions o_;
  int64_t last_ms_;
  double indoor_c_;
  double power_kw_ = 0;
  double run_time_s_ = 0;
};

}  // namespace

Status CiLoadOptions::Validate() const {
  if (blocks < 1 || blocks > 64)
    return Invalid(fmt::format("ci_load.blocks {} outside [1, 64]", blocks));
  Status s = InRange("ci_load.block_share", block_share, 0.001, 1.0);
  if (!s.ok()) return s;
  if (blocks * block_share > 1.0 + 1e-9) {
    return Invalid(fmt::format("ci_load.blocks {} x block_share {} is more than the whole load (1)",
                               blocks, block_share));
  }
  for (auto [field, v] : {std::pair<const char*, int64_t>{"ci_load.min_off_s", min_off_s},
                          {"ci_load.min_on_s", min_on_s}}) {
    if (v < 0 || v > 86400) return Invalid(fmt::format("{} {} outside [0, 86400]", field, v));
  }
  s = InRange("ci_load.rebound_share", rebound_share, 0.0, 2.0);
  if (!s.ok()) return s;
  return InRange("ci_load.rebound_peak_share", rebound_peak_share, 0.0, 2.0);
}

Status ThermostatOptions::Validate() const {
  for (auto [field, v, lo, hi] :
       {std::tuple<const char*, double, double, double>{"thermostat.setpoint_c", setpoint_c, 5, 35},
        {"thermostat.comfort_band_c", comfort_band_c, 0.2, 10},
        {"thermostat.resistance_c_per_kw", resistance_c_per_kw, 0.01, 100},
        {"thermostat.capacitance_kwh_per_c", capacitance_kwh_per_c, 0.01, 1000},
        {"thermostat.cop", cop, 1, 10},
        {"thermostat.outdoor_mean_c", outdoor_mean_c, -40, 55},
        {"thermostat.outdoor_swing_c", outdoor_swing_c, 0, 30},
        {"thermostat.horizon_s", horizon_s, 1, 3600}}) {
    Status s = InRange(field, v, lo, hi);
    if (!s.ok()) return s;
  }
  if (!std::isnan(initial_indoor_c) &&
      !(std::abs(initial_indoor_c - setpoint_c) <= comfort_band_c)) {
    return Invalid(fmt::format("thermostat.initial_indoor_c {} outside the comfort band {} +- {}",
                               initial_indoor_c, setpoint_c, comfort_band_c));
  }
  return Status::Ok();
}

std::unique_ptr<Device> MakeCiLoad(const Nameplate& nameplate, const CiLoadOptions& options,
                                   int64_t start_ms) {
  return std::make_unique<CiLoad>(nameplate, options, start_ms);
}

std::unique_ptr<Device> MakeThermostat(const Nameplate& nameplate, const ThermostatOptions& options,
                                       int64_t start_ms) {
  return std::make_unique<Thermostat>(nameplate, options, start_ms);
}

std::optional<CiLoadState> CiLoadStateOf(const Device& device) {
  if (const auto* c = dynamic_cast<const CiLoad*>(&device)) return c->State();
  return std::nullopt;
}

std::optional<double> IndoorTemperatureOf(const Device& device) {
  if (const auto* t = dynamic_cast<const Thermostat*>(&device)) return t->indoor_c();
  return std::nullopt;
}

}  // namespace derms::edge
