// The SunSpec device adapter against a real Modbus TCP server standing for
// the inverter (tests/support/sunspec_simulator.h): discovery, scale
// factors, controls written and read back, refused and unconfirmed writes,
// timeouts, a lost connection and its recovery, a hardware fault.
#include <arpa/inet.h>
#include <modbus.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "edge_agent/sunspec/sunspec_device.h"
#include "tests/support/sunspec_simulator.h"

using derms::sunspec::SunSpecDevice;
using derms::sunspec::SunSpecOptions;
using derms::testing::SunSpecSimOptions;
using derms::testing::SunSpecSimulator;

namespace {

SunSpecOptions OptionsFor(const SunSpecSimulator& sim) {
  SunSpecOptions o;
  o.port = sim.port();
  o.poll_interval_ms = 1000;
  o.timeout_ms = 200;
  o.reconnect_min_ms = 500;
  o.reconnect_max_ms = 2000;
  REQUIRE(o.Validate().ok());
  return o;
}

derms::edge::Nameplate PvNameplate() {
  derms::edge::Nameplate n;
  n.type = derms::v1::PV;
  n.max_discharge_kw = 5;
  return n;
}

derms::edge::Nameplate BatteryNameplate() {
  derms::edge::Nameplate n;
  n.type = derms::v1::BATTERY;
  n.max_discharge_kw = 5;
  n.max_charge_kw = 5;
  n.energy_capacity_kwh = 10;
  return n;
}

const derms::v1::Alarm* FindAlarm(const derms::edge::Reading& r, const std::string& code) {
  for (const auto& a : r.alarms) {
    if (a.code() == code) return &a;
  }
  return nullptr;
}

// The device with a wall clock the test steps along with the agent's time.
struct Rig {
  Rig(const SunSpecOptions& o, const derms::edge::Nameplate& n)
      : device(o, n, [this] { return wall_ms; }) {}
  void Step(int64_t t, std::optional<double> sp) {
    wall_ms = t;
    device.Step(t, sp);
  }
  derms::Status Apply(int64_t t, std::optional<double> sp) {
    wall_ms = t;
    return device.Apply(t, sp);
  }
  int64_t wall_ms = 0;
  SunSpecDevice device;
};

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("the adapter discovers the models and reads scaled values", "[sunspec]") {
  SunSpecSimulator sim;
  Rig device_rig(OptionsFor(sim), PvNameplate());
  SunSpecDevice& device = device_rig.device;
  CHECK_FALSE(device.readable());
  device_rig.Step(0, std::nullopt);
  REQUIRE(device.readable());
  std::vector<uint16_t> ids;
  for (const auto& h : device.discovered()) ids.push_back(h.id);
  CHECK(ids == std::vector<uint16_t>{1, 103, 120, 121, 123});
  CHECK(device.ratings().max_export_kw == Approx(5.0));  // 500 at WMax_SF 1

  derms::edge::Reading r = device.Read();
  CHECK(r.active_power_kw == Approx(4.0));  // 400 at W_SF 1
  CHECK(r.voltage_v == Approx(240.0));      // mean of 240.1, 239.9, 240.0 at V_SF -1
  CHECK(r.frequency_hz == Approx(60.0));    // 6000 at Hz_SF -2
  CHECK(r.alarms.empty());
  CHECK(device.Range().max_kw == Approx(5.0));
  CHECK(device.BaselineKw() == Approx(4.0));

  sim.SetAvailableW(3000);
  device_rig.Step(500, std::nullopt);  // before the next poll: still the last reading
  CHECK(device.Read().active_power_kw == Approx(4.0));
  device_rig.Step(1000, std::nullopt);
  CHECK(device.Read().active_power_kw == Approx(3.0));
}

TEST_CASE("a PV limit is written, read back and acts on the output", "[sunspec]") {
  SunSpecSimulator sim;
  Rig device_rig(OptionsFor(sim), PvNameplate());
  SunSpecDevice& device = device_rig.device;
  device_rig.Step(0, std::nullopt);
  REQUIRE(device.readable());
  // The agent starting without a control leaves the device's own settings alone.
  CHECK(sim.writes() == 0);

  REQUIRE(device_rig.Apply(100, 2.0).ok());
  CHECK(sim.RawAt(123, "WMaxLimPct") == 400);  // 40.0 % of 5 kW at SF -1
  CHECK(sim.RawAt(123, "WMaxLim_Ena") == 1);
  CHECK(sim.OutputW() == Approx(2000));
  uint64_t writes = sim.writes();
  device_rig.Step(1000, 2.0);  // same setpoint: nothing written again
  CHECK(sim.writes() == writes);
  CHECK(device.Read().active_power_kw == Approx(2.0));

  device_rig.Step(1100, std::nullopt);  // the control ended: the limit is released
  CHECK(sim.RawAt(123, "WMaxLim_Ena") == 0);
  CHECK(sim.OutputW() == Approx(4000));
}

TEST_CASE("a battery setpoint goes through model 124 rates", "[sunspec]") {
  SunSpecSimOptions so;
  so.storage = true;
  SunSpecSimulator sim(so);
  Rig device_rig(OptionsFor(sim), BatteryNameplate());
  SunSpecDevice& device = device_rig.device;
  device_rig.Step(0, std::nullopt);
  REQUIRE(device.readable());
  REQUIRE(device.Read().soc_pct.has_value());
  CHECK(*device.Read().soc_pct == Approx(50.0));
  CHECK(device.Range().min_kw == Approx(-5.0));

  REQUIRE(device_rig.Apply(100, -2.0).ok());
  CHECK(static_cast<int16_t>(sim.RawAt(124, "InWRte")) == 400);  // 40.0 % charge
  CHECK(static_cast<int16_t>(sim.RawAt(124, "OutWRte")) == -400);
  CHECK(sim.RawAt(124, "StorCtl_Mod") == 3);
  CHECK(sim.OutputW() == Approx(-2000));
  device_rig.Step(1000, -2.0);
  CHECK(device.Read().active_power_kw == Approx(-2.0));

  REQUIRE(device_rig.Apply(1100, 3.0).ok());
  CHECK(sim.OutputW() == Approx(3000));
}

TEST_CASE("a refused write fails with the Modbus reason; the device stays readable", "[sunspec]") {
  SunSpecSimulator sim;
  Rig device_rig(OptionsFor(sim), PvNameplate());
  SunSpecDevice& device = device_rig.device;
  device_rig.Step(0, std::nullopt);
  sim.RefuseWrites(MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE);
  derms::Status s = device_rig.Apply(100, 2.0);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == "modbus_exception");
  CHECK(Contains(s.message(), "refused writing 123.WMaxLimPct"));
  CHECK(Contains(s.message(), "Modbus exception 3 (Illegal data value)"));
  CHECK(device.readable());
  CHECK(sim.OutputW() == Approx(4000));

  sim.RefuseWrites(0);
  sim.IgnoreWrites(true);
  s = device_rig.Apply(200, 2.0);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == "not_confirmed");
  CHECK(Contains(s.message(), "did not confirm 123.WMaxLimPct: wrote 400, reads back 1000"));
  sim.IgnoreWrites(false);
}

TEST_CASE("a lost connection is reported as a fault and recovered with backoff", "[sunspec]") {
  SunSpecSimulator sim;
  Rig device_rig(OptionsFor(sim), PvNameplate());
  SunSpecDevice& device = device_rig.device;
  device_rig.Step(0, std::nullopt);
  REQUIRE(device_rig.Apply(100, 3.0).ok());

  sim.DropConnections(true);
  device_rig.Step(1000, 3.0);
  REQUIRE_FALSE(device.readable());
  derms::edge::Reading r = device.Read();
  const derms::v1::Alarm* a = FindAlarm(r, "DEVICE_UNREACHABLE");
  REQUIRE(a != nullptr);
  CHECK(a->severity() == derms::v1::CRITICAL);
  CHECK(device.Range().max_kw == 0);
  derms::Status s = device_rig.Apply(1100, 1.0);
  REQUIRE_FALSE(s.ok());
  CHECK(Contains(s.message(), "cannot be reached"));

  device_rig.Step(1200, 3.0);  // inside the first backoff (500 ms): no attempt
  CHECK_FALSE(device.readable());
  device_rig.Step(1600, 3.0);  // attempt refused: backoff doubles to 1000 ms
  CHECK_FALSE(device.readable());

  sim.DropConnections(false);
  device_rig.Step(2000, 3.0);  // still backing off
  CHECK_FALSE(device.readable());
  device_rig.Step(2700, 3.0);
  REQUIRE(device.readable());
  CHECK(device.connects() == 2);
  CHECK(FindAlarm(device.Read(), "DEVICE_UNREACHABLE") == nullptr);
  // The setpoint in force is written again after a reconnect.
  CHECK(sim.RawAt(123, "WMaxLimPct") == 600);
  CHECK(sim.RawAt(123, "WMaxLim_Ena") == 1);
}

TEST_CASE("a device that stops answering times out and comes back", "[sunspec]") {
  SunSpecSimulator sim;
  Rig device_rig(OptionsFor(sim), PvNameplate());
  SunSpecDevice& device = device_rig.device;
  device_rig.Step(0, std::nullopt);
  REQUIRE(device.readable());
  sim.SetUnresponsive(true);
  device_rig.Step(1000, std::nullopt);
  REQUIRE_FALSE(device.readable());
  CHECK(Contains(device.fault().message(), "timed out"));
  sim.SetUnresponsive(false);
  device_rig.Step(1600, std::nullopt);
  CHECK(device.readable());
}

TEST_CASE("the hardware-fault event bit is a CRITICAL alarm", "[sunspec]") {
  SunSpecSimulator sim;
  Rig device_rig(OptionsFor(sim), PvNameplate());
  SunSpecDevice& device = device_rig.device;
  device_rig.Step(0, std::nullopt);
  sim.SetHardwareFault(true);
  device_rig.Step(1000, std::nullopt);
  derms::edge::Reading r = device.Read();
  const derms::v1::Alarm* hw = FindAlarm(r, "HW_TEST_FAILURE");
  REQUIRE(hw != nullptr);
  CHECK(hw->severity() == derms::v1::CRITICAL);
  REQUIRE(FindAlarm(r, "INVERTER_FAULT") != nullptr);
  CHECK(r.active_power_kw == 0);
  sim.SetHardwareFault(false);
  device_rig.Step(2000, std::nullopt);
  CHECK(device.Read().alarms.empty());
}

TEST_CASE("a wrong unit id or base address is a fault naming the cause", "[sunspec]") {
  SunSpecSimulator sim;
  SunSpecOptions o = OptionsFor(sim);
  o.unit_id = 9;
  Rig wrong_unit_rig(o, PvNameplate());
  SunSpecDevice& wrong_unit = wrong_unit_rig.device;
  wrong_unit_rig.Step(0, std::nullopt);
  CHECK_FALSE(wrong_unit.readable());
  CHECK(Contains(wrong_unit.fault().message(), "Modbus exception 11"));

  o = OptionsFor(sim);
  o.base_address = 0;
  Rig wrong_base_rig(o, PvNameplate());
  SunSpecDevice& wrong_base = wrong_base_rig.device;
  wrong_base_rig.Step(0, std::nullopt);
  CHECK_FALSE(wrong_base.readable());
  CHECK(Contains(wrong_base.fault().message(), "Illegal data address"));

  o = OptionsFor(sim);
  o.models = {1, 103, 124};
  Rig wrong_models_rig(o, PvNameplate());
  SunSpecDevice& wrong_models = wrong_models_rig.device;
  wrong_models_rig.Step(0, std::nullopt);
  CHECK_FALSE(wrong_models.readable());
  CHECK(Contains(wrong_models.fault().message(), "model 124 is configured"));
  CHECK(FindAlarm(wrong_models.Read(), "SUNSPEC_MAP_ERROR") != nullptr);
}

TEST_CASE("a setpoint the device drops is written again on the next poll", "[sunspec]") {
  SunSpecSimulator sim;
  Rig rig(OptionsFor(sim), PvNameplate());
  rig.Step(0, std::nullopt);
  REQUIRE(rig.Apply(100, 2.0).ok());
  CHECK(sim.OutputW() == Approx(2000));
  sim.SetRegister(123, "WMaxLim_Ena", 0);  // a revert timer, or someone at the panel
  CHECK(sim.OutputW() == Approx(4000));
  rig.Step(1100, 2.0);  // the poll sees it ...
  rig.Step(1150, 2.0);  // ... and the limit is written again
  CHECK(sim.RawAt(123, "WMaxLim_Ena") == 1);
  CHECK(sim.OutputW() == Approx(2000));
}

TEST_CASE("a write that times out fails the control and reconnects", "[sunspec]") {
  SunSpecSimulator sim;
  Rig rig(OptionsFor(sim), PvNameplate());
  rig.Step(0, std::nullopt);
  sim.SetUnresponsive(true);
  derms::Status s = rig.Apply(100, 2.0);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == "unavailable");
  CHECK(Contains(s.message(), "timed out"));
  CHECK_FALSE(rig.device.readable());
  sim.SetUnresponsive(false);
  rig.Step(700, std::nullopt);  // after the backoff: connected again, the attempt released
  CHECK(rig.device.readable());
  CHECK(sim.RawAt(123, "WMaxLim_Ena") == 0);
}

#ifdef DERMS_PYMODBUS_SERVER
// A second Modbus TCP server, written independently (python3-pymodbus), so
// the adapter is not only checked against libmodbus talking to itself.
TEST_CASE("the adapter works against an independent pymodbus SunSpec server", "[sunspec]") {
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(probe);
  std::string port_arg = std::to_string(port);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/usr/bin/python3", "python3", DERMS_PYMODBUS_SERVER, port_arg.c_str(), nullptr);
    std::_Exit(127);
  }
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{pid};

  SunSpecOptions o;
  o.port = port;
  o.timeout_ms = 1000;
  o.reconnect_min_ms = 100;
  o.reconnect_max_ms = 200;
  Rig rig(o, PvNameplate());
  int64_t t = 0;
  // The interpreter takes a moment to listen: the adapter retries meanwhile.
  for (; t < 20000 && !rig.device.readable(); t += 100) {
    rig.Step(t, std::nullopt);
    if (!rig.device.readable()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(rig.device.readable());
  std::vector<uint16_t> ids;
  for (const auto& h : rig.device.discovered()) ids.push_back(h.id);
  CHECK(ids == std::vector<uint16_t>{1, 103, 121, 123});
  derms::edge::Reading r = rig.device.Read();
  CHECK(r.active_power_kw == Approx(3.457));
  CHECK(r.voltage_v == Approx(230));
  CHECK(r.frequency_hz == Approx(50.0));
  CHECK(rig.device.ratings().max_export_kw == Approx(6.0));
  REQUIRE(rig.Apply(t, 3.0).ok());  // 50 % of 6 kW, confirmed by read-back
  derms::Status s = rig.Apply(t + 10, std::nullopt);
  CHECK(s.ok());
}
#endif
