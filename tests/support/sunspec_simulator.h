// A SunSpec device standing for a real inverter in tests: a Modbus TCP server
// (libmodbus's server API) on a free loopback port, on its own thread,
// serving models 1, 103 (or 101), 120, 121, 123 for PV or 1, 101, 120, 121,
// 124 for a battery, with non-trivial scale factors. Written limits act on
// its simulated output: PV is min(available, WMaxLimPct of WMax when
// enabled); a battery follows the window InWRte/OutWRte of model 124
// (StorCtl_Mod bits), its SoC integrating the power in wall time.
//
// Faults on demand: refuse writes with a Modbus exception code, acknowledge
// writes without keeping them (read-back differs), stop answering
// (timeouts), drop connections (close the client's socket and every new
// one), and raise the hardware-fault event bit with the FAULT state.
//
// Thread-safe: setters and getters may be called while it serves.
#ifndef DERMS_TESTS_SUPPORT_SUNSPEC_SIMULATOR_H_
#define DERMS_TESTS_SUPPORT_SUNSPEC_SIMULATOR_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tests/support/sunspec_image.h"

struct _modbus;
struct _modbus_mapping_t;

namespace derms::testing {

struct SunSpecSimOptions {
  bool storage = false;       // false: PV inverter; true: battery inverter (model 124)
  uint32_t base = 40000;      // where "SunS" is
  int unit_id = 1;            // requests to other unit ids get exception 0x0B
  int port = 0;               // 0: a free loopback port
  double rating_w = 5000;     // 121 WMax (and 124 WChaMax for storage)
  double available_w = 4000;  // PV: what the sun gives now
  double soc_pct = 50;        // storage: start state of charge
  double capacity_wh = 10000;
};

class SunSpecSimulator {
 public:
  // Starts serving; throws std::runtime_error when it cannot listen.
  explicit SunSpecSimulator(SunSpecSimOptions options = {});
  ~SunSpecSimulator();

  int port() const { return port_; }
  const SunSpecImage& layout() const { return layout_; }

  // Fault injection.
  void RefuseWrites(int exception_code) { refuse_code_ = exception_code; }  // 0: accept
  void IgnoreWrites(bool on) { ignore_writes_ = on; }
  void SetUnresponsive(bool on) { unresponsive_ = on; }
  // Returns once the server has closed the client's socket.
  void DropConnections(bool on);
  void SetHardwareFault(bool on);
  void SetAvailableW(double w);
  // Changes a register as the device itself might (a revert timer, a local panel).
  void SetRegister(uint16_t model, const std::string& point, int64_t raw);

  // The device's state.
  double OutputW() const;
  double SocPct() const;
  uint16_t RawAt(uint16_t model, const std::string& point) const;
  uint64_t writes() const { return writes_; }
  uint64_t requests() const { return requests_; }
  uint64_t connections() const { return connections_; }

 private:
  void Serve();
  void Handle(const uint8_t* query, int length);
  void UpdateLocked(double dt_s);  // REQUIRES: mutex_ held
  uint16_t& RegLocked(uint16_t model, const std::string& point);
  void SetLocked(uint16_t model, const std::string& point, int64_t raw);

  SunSpecSimOptions options_;
  SunSpecImage layout_;
  _modbus* ctx_ = nullptr;
  int listen_fd_ = -1;
  int client_fd_ = -1;  // touched by the server thread only
  int port_ = 0;

  mutable std::mutex mutex_;
  _modbus_mapping_t* mapping_ = nullptr;  // GUARDED_BY(mutex_)
  double available_w_;                    // GUARDED_BY(mutex_)
  double output_w_ = 0;                   // GUARDED_BY(mutex_)
  double soc_pct_;                        // GUARDED_BY(mutex_)

  std::atomic<int> refuse_code_{0};
  std::atomic<bool> ignore_writes_{false};
  std::atomic<bool> unresponsive_{false};
  std::atomic<bool> drop_{false};
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> loops_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace derms::testing

#endif  // DERMS_TESTS_SUPPORT_SUNSPEC_SIMULATOR_H_
