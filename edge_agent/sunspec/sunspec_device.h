// A SunSpec inverter or battery over Modbus TCP (libmodbus) behind the edge
// agent's Device seam. On the first Step it connects, finds the model chain
// at the base address and reads the models in use; then it re-reads them
// every poll interval, and writes the setpoint through the device's own
// controls (sunspec_mapping.h), reading every write back to confirm it.
//
// Failures never stop the agent: a lost connection, a timeout or a garbled
// answer closes the socket and reconnects with a doubling backoff; while the
// device cannot be read, Read() carries a CRITICAL DEVICE_UNREACHABLE alarm
// and Range() is empty. A Modbus exception on a write, or a read-back that
// differs, fails Apply() with the Modbus reason.
//
// Polls, timeouts and backoff run on a monotonic wall clock (a device's
// timing is physical, whatever the agent's simulated clock does); run time
// counts in the agent's time (now_ms). All calls come from the agent's loop
// thread; each Modbus request blocks it for at most timeout_ms.
#ifndef DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_DEVICE_H_
#define DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_DEVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "edge_agent/devices/device.h"
#include "edge_agent/sunspec/sunspec_mapping.h"
#include "edge_agent/sunspec/sunspec_options.h"

struct _modbus;

namespace derms::sunspec {

class SunSpecDevice : public derms::edge::Device {
 public:
  // REQUIRES: options.Validate().ok(). Does not connect: the first Step does.
  // `nameplate` (from the agent's configuration) says whether the DER is
  // storage (BATTERY) and caps the range the device reports.
  // `monotonic_ms` (tests step it) defaults to std::chrono::steady_clock.
  SunSpecDevice(SunSpecOptions options, derms::edge::Nameplate nameplate,
                std::function<int64_t()> monotonic_ms = nullptr);
  ~SunSpecDevice() override;
  SunSpecDevice(const SunSpecDevice&) = delete;
  SunSpecDevice& operator=(const SunSpecDevice&) = delete;

  derms::edge::PowerRange Range() const override;
  double BaselineKw() const override;
  void Step(int64_t now_ms, std::optional<double> setpoint_kw) override;
  derms::edge::Reading Read() const override;
  Status Apply(int64_t now_ms, std::optional<double> setpoint_kw) override;

  // For tests and logs.
  bool readable() const { return ctx_ != nullptr && fault_.ok(); }
  const Status& fault() const { return fault_; }
  const std::vector<ModelHeader>& discovered() const { return discovered_; }
  const Ratings& ratings() const { return ratings_; }
  uint64_t connects() const { return connects_; }

 private:
  Status Connect();
  Status Poll();
  // False when a register of in_force_ that the poll read differs from it.
  bool StillInForce() const;
  Status WriteControl(std::optional<double> setpoint_kw);
  // A failed request: records the fault and, unless `keep_link` (the device
  // answered with a Modbus exception), drops the connection and backs off.
  void Failed(int64_t wall_ms, const Status& why, bool keep_link);
  void Disconnect();
  Status ReadRegisters(uint32_t address, uint16_t count, std::vector<uint16_t>* out);
  std::string Where() const;

  const SunSpecOptions options_;
  const derms::edge::Nameplate nameplate_;
  const bool storage_;
  const std::function<int64_t()> monotonic_ms_;
  _modbus* ctx_ = nullptr;  // nullptr while disconnected

  std::vector<ModelHeader> discovered_;
  ModelSet models_;
  Ratings ratings_;
  std::optional<ControlKind> kind_;
  Status fault_ = Status::Error("unavailable", "not connected yet");
  uint64_t connects_ = 0;

  // Monotonic wall time.
  int64_t next_connect_ms_ = 0;
  int64_t backoff_ms_ = 0;
  int64_t next_poll_ms_ = 0;
  int64_t next_write_ms_ = 0;
  // The setpoint this agent last put in force (nullopt: none of ours), and
  // whether the device is known to hold it (false after a reconnect or a
  // failed write, so it is written again).
  std::optional<double> written_;
  bool confirmed_ = true;
  // The registers of the last confirmed plan, checked on every poll: a
  // device that dropped them (a revert timer, a local change, a reboot) gets
  // them written again.
  std::vector<RegisterWrite> in_force_;

  int64_t last_ms_ = -1;
  double run_time_s_ = 0;
  double baseline_kw_ = 0;
};

}  // namespace derms::sunspec

#endif  // DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_DEVICE_H_
