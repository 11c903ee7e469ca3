#include "edge_agent/sunspec/sunspec_device.h"

#include <errno.h>
#include <fmt/format.h>
#include <modbus.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace derms::sunspec {
namespace {

bool IsModbusException(int err) { return err >= EMBXILFUN && err <= EMBXGTAR; }

Status ModbusError(int err, const std::string& what) {
  const char* kind = IsModbusException(err) ? "modbus_exception" : "unavailable";
  std::string reason =
      IsModbusException(err)
          ? fmt::format("Modbus exception {} ({})", err - MODBUS_ENOBASE, modbus_strerror(err))
          : modbus_strerror(err);
  return Status::Error(kind, fmt::format("{}: {}", what, reason));
}

}  // namespace

SunSpecDevice::SunSpecDevice(SunSpecOptions options, derms::edge::Nameplate nameplate,
                             std::function<int64_t()> monotonic_ms)
    : options_(std::move(options)),
      nameplate_(nameplate),
      storage_(nameplate.type == derms::v1::BATTERY),
      monotonic_ms_(monotonic_ms ? std::move(monotonic_ms) : [] {
        return static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
      }) {}

SunSpecDevice::~SunSpecDevice() { Disconnect(); }

std::string SunSpecDevice::Where() const {
  return fmt::format("SunSpec device {}:{} unit {}", options_.host, options_.port,
                     options_.unit_id);
}

void SunSpecDevice::Disconnect() {
  if (!ctx_) return;
  modbus_close(ctx_);
  modbus_free(ctx_);
  ctx_ = nullptr;
}

Status SunSpecDevice::ReadRegisters(uint32_t address, uint16_t count, std::vector<uint16_t>* out) {
  out->resize(count);
  if (modbus_read_registers(ctx_, static_cast<int>(address), count, out->data()) != count) {
    int err = errno;
    return ModbusError(err, fmt::format("{}: reading {} registers at {}", Where(), count, address));
  }
  return Status::Ok();
}

Status SunSpecDevice::Connect() {
  Disconnect();
  std::string port = std::to_string(options_.port);
  ctx_ = modbus_new_tcp_pi(options_.host.c_str(), port.c_str());
  if (!ctx_) return Status::Error("unavailable", Where() + ": cannot create a Modbus context");
  auto timeout_s = static_cast<uint32_t>(options_.timeout_ms / 1000);
  auto timeout_us = static_cast<uint32_t>((options_.timeout_ms % 1000) * 1000);
  modbus_set_response_timeout(ctx_, timeout_s, timeout_us);
  modbus_set_slave(ctx_, static_cast<int>(options_.unit_id));
  if (modbus_connect(ctx_) != 0) {
    int err = errno;
    Disconnect();
    return ModbusError(err, Where() + ": connect");
  }
  RegisterReader reader = [this](uint32_t a, uint16_t n, std::vector<uint16_t>* out) {
    return ReadRegisters(a, n, out);
  };
  auto headers = DiscoverModels(static_cast<uint32_t>(options_.base_address), reader);
  if (!headers.ok()) return headers.status();
  discovered_ = *headers;
  auto models = ReadModelSet(discovered_, options_.models, reader);
  if (!models.ok()) return models.status();
  models_ = std::move(models).value();
  Status s = CheckModels(models_, storage_);
  if (!s.ok()) return Status::Error("sunspec_error", fmt::format("{}: {}", Where(), s.message()));
  ratings_ = RatingsOf(models_);
  kind_ = ControlKindOf(models_, storage_);
  if (!written_) baseline_kw_ = ReadingOf(models_).active_power_kw;
  ++connects_;
  std::vector<uint16_t> ids;
  for (const auto& [id, m] : models_) ids.push_back(id);
  spdlog::info("{}: connected, models in use {}, control {}, export {:.3f} kW, charge {:.3f} kW",
               Where(), fmt::join(ids, ", "), ControlKindName(*kind_), ratings_.max_export_kw,
               ratings_.max_charge_kw);
  return Status::Ok();
}

Status SunSpecDevice::Poll() {
  RegisterReader reader = [this](uint32_t a, uint16_t n, std::vector<uint16_t>* out) {
    return ReadRegisters(a, n, out);
  };
  ModelSet fresh;
  for (const auto& [id, m] : models_) {
    // The common model and the nameplate do not change while connected.
    if (id == 1 || id == 120) {
      fresh.emplace(id, m);
      continue;
    }
    ModelHeader h{id, static_cast<uint16_t>(m.registers().size() - 2), m.address()};
    auto regs = ReadModel(h, reader);
    if (!regs.ok()) return regs.status();
    fresh.emplace(id, ModelData(FindModelDef(id), m.address(), std::move(regs).value()));
  }
  models_ = std::move(fresh);
  ratings_ = RatingsOf(models_);
  // With no control of ours the output is the device's own: its baseline.
  if (!written_) baseline_kw_ = ReadingOf(models_).active_power_kw;
  if (written_ && confirmed_ && !StillInForce()) {
    spdlog::warn("{}: the device no longer holds the setpoint written ({}): writing it again",
                 Where(), ControlKindName(*kind_));
    confirmed_ = false;
  }
  return Status::Ok();
}

bool SunSpecDevice::StillInForce() const {
  for (const auto& w : in_force_) {
    for (const auto& [id, m] : models_) {
      if (w.address < m.address() ||
          w.address + w.values.size() > m.address() + m.registers().size()) {
        continue;
      }
      auto first = m.registers().begin() + (w.address - m.address());
      if (!std::equal(w.values.begin(), w.values.end(), first)) return false;
    }
  }
  return true;
}

void SunSpecDevice::Failed(int64_t wall_ms, const Status& why, bool keep_link) {
  bool was_readable = readable();
  fault_ = why;
  if (keep_link) {
    // The device answered: the link is fine, the request was not.
    next_poll_ms_ = wall_ms + options_.poll_interval_ms;
  } else {
    Disconnect();
    confirmed_ = false;
    backoff_ms_ = backoff_ms_ == 0 ? options_.reconnect_min_ms
                                   : std::min(options_.reconnect_max_ms, backoff_ms_ * 2);
    next_connect_ms_ = wall_ms + backoff_ms_;
  }
  if (was_readable) {
    spdlog::warn("{} (retrying in {} ms)", why.message(),
                 ctx_ ? options_.poll_interval_ms : backoff_ms_);
  } else {
    spdlog::debug("{}", why.message());
  }
}

void SunSpecDevice::Step(int64_t now_ms, std::optional<double> setpoint_kw) {
  if (last_ms_ >= 0 && now_ms > last_ms_ && readable() &&
      std::abs(ReadingOf(models_).active_power_kw) > 1e-6) {
    run_time_s_ += (now_ms - last_ms_) / 1000.0;
  }
  last_ms_ = std::max(last_ms_, now_ms);
  const int64_t wall_ms = monotonic_ms_();

  if (!ctx_ && wall_ms >= next_connect_ms_) {
    Status s = Connect();
    if (!s.ok()) {
      Failed(wall_ms, s, /*keep_link=*/false);
      return;
    }
    backoff_ms_ = 0;
    fault_ = Status::Ok();
    next_poll_ms_ = wall_ms + options_.poll_interval_ms;
    next_write_ms_ = wall_ms;
  }
  if (!ctx_) return;
  if (wall_ms >= next_poll_ms_) {
    next_poll_ms_ = wall_ms + options_.poll_interval_ms;
    Status s = Poll();
    if (!s.ok()) {
      Failed(wall_ms, s, s.code() == "modbus_exception");
      if (!ctx_) return;
    } else if (!fault_.ok()) {
      spdlog::info("{}: readable again", Where());
      fault_ = Status::Ok();
    }
  }
  bool changed = setpoint_kw != written_ || (written_ && !confirmed_);
  if (changed && wall_ms >= next_write_ms_) {
    Status s = WriteControl(setpoint_kw);
    if (!s.ok()) {
      next_write_ms_ = wall_ms + options_.poll_interval_ms;
      spdlog::warn("{}", s.message());
      if (s.code() == "unavailable") Failed(wall_ms, s, false);
    }
  }
}

Status SunSpecDevice::Apply(int64_t now_ms, std::optional<double> setpoint_kw) {
  last_ms_ = std::max(last_ms_, now_ms);
  if (!readable()) {
    return Status::Error("unavailable",
                         fmt::format("{} cannot be reached: {}", Where(), fault_.message()));
  }
  Status s = WriteControl(setpoint_kw);
  if (s.code() == "unavailable") Failed(monotonic_ms_(), s, false);
  return s;
}

Status SunSpecDevice::WriteControl(std::optional<double> setpoint_kw) {
  if (!ctx_ || !kind_) return Status::Error("unavailable", Where() + ": not connected");
  auto plan = PlanControl(models_, ratings_, Range(), *kind_, setpoint_kw);
  if (!plan.ok()) {
    return Status::Error("sunspec_error", fmt::format("{}: {}", Where(), plan.status().message()));
  }
  // From here the device may hold part of the plan: written again until confirmed.
  written_ = setpoint_kw;
  confirmed_ = false;
  for (const auto& w : plan->writes) {
    if (modbus_write_registers(ctx_, static_cast<int>(w.address), static_cast<int>(w.values.size()),
                               w.values.data()) != static_cast<int>(w.values.size())) {
      int err = errno;
      return ModbusError(
          err, fmt::format("{} refused writing {} at register {}", Where(), w.point, w.address));
    }
  }
  std::vector<uint16_t> back;
  for (const auto& w : plan->writes) {
    Status s = ReadRegisters(w.address, static_cast<uint16_t>(w.values.size()), &back);
    if (!s.ok()) return s;
    if (back != w.values) {
      return Status::Error("not_confirmed",
                           fmt::format("{} did not confirm {}: wrote {}, reads back {}", Where(),
                                       w.point, fmt::join(w.values, " "), fmt::join(back, " ")));
    }
  }
  confirmed_ = true;
  in_force_ = plan->writes;
  spdlog::info("{}: {} {} (confirmed by read-back)", Where(),
               setpoint_kw ? fmt::format("setpoint {:.3f} kW via", *plan->applied_kw)
                           : std::string("released"),
               ControlKindName(*kind_));
  return Status::Ok();
}

derms::edge::PowerRange SunSpecDevice::Range() const {
  if (!readable()) return {0, 0};
  derms::edge::PowerRange r = RangeOf(models_, ratings_);
  // The announced nameplate caps what the device says it can do.
  r.max_kw = std::min(r.max_kw, nameplate_.max_discharge_kw);
  r.min_kw = std::max(r.min_kw, -nameplate_.max_charge_kw);
  return r;
}

double SunSpecDevice::BaselineKw() const {
  derms::edge::PowerRange r = Range();
  return std::clamp(baseline_kw_, std::min(r.min_kw, 0.0), std::max(r.max_kw, 0.0));
}

derms::edge::Reading SunSpecDevice::Read() const {
  derms::edge::Reading r;
  if (readable()) {
    r = ReadingOf(models_);
  } else {
    derms::v1::Alarm a;
    a.set_code(fault_.code() == "sunspec_error" ? "SUNSPEC_MAP_ERROR" : "DEVICE_UNREACHABLE");
    a.set_severity(derms::v1::CRITICAL);
    a.set_message(fault_.message());
    r.alarms.push_back(std::move(a));
  }
  r.run_time_s = run_time_s_;
  return r;
}

}  // namespace derms::sunspec
