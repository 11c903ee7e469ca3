// The seam between the edge agent and the hardware it controls. A vendor
// implements Device for a real controller (Modbus, SunSpec, CAN ...); the
// simulations in simulated.h implement it for demos and tests.
#ifndef DERMS_EDGE_AGENT_DEVICES_DEVICE_H_
#define DERMS_EDGE_AGENT_DEVICES_DEVICE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "derms/v1/derms.pb.h"
#include "edge_agent/control/control_engine.h"

namespace derms::edge {

// The device's fixed ratings, as announced in its birth.
struct Nameplate {
  derms::v1::DerType type = derms::v1::BATTERY;
  double max_discharge_kw = 0;  // >= 0
  double max_charge_kw = 0;     // >= 0
  double energy_capacity_kwh = 0;
  double latitude = 0;
  double longitude = 0;
};

// One reading of the device, taken when telemetry is due.
struct Reading {
  double active_power_kw = 0;  // + export, - import
  double reactive_power_kvar = 0;
  std::optional<double> soc_pct;
  double voltage_v = 0;
  double frequency_hz = 0;
  double run_time_s = 0;
  std::vector<derms::v1::Alarm> alarms;
};

// Called only from the agent's loop thread.
class Device {
 public:
  virtual ~Device() = default;
  // What active power the device can produce right now.
  virtual PowerRange Range() const = 0;
  // The active power the device would have with no control.
  virtual double BaselineKw() const = 0;
  // Drives the device to `setpoint_kw` (nullopt: its default behaviour) and
  // brings its state forward to `now_ms`.
  virtual void Step(int64_t now_ms, std::optional<double> setpoint_kw) = 0;
  virtual Reading Read() const = 0;
  // A control starts: puts `setpoint_kw` in force now and says whether the
  // device took it. A real controller that refuses or does not confirm it
  // answers an error with the device's reason, and the agent answers the
  // control REJECTED. Simulations cannot refuse: Step does their work.
  virtual Status Apply(int64_t /*now_ms*/, std::optional<double> /*setpoint_kw*/) {
    return Status::Ok();
  }
};

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_DEVICES_DEVICE_H_
