// The aggregator's checks of every inbound message against the contract:
// each accepts a good message and rejects a bad one with a message naming the
// input (kind and id), the field and the rule.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "cloud_aggregator/registry/validation.h"

namespace reg = derms::registry;

namespace {

constexpr int64_t kNow = 1767225600000;  // 2026-01-01T00:00Z
constexpr int64_t kDayMs = 24LL * 3600 * 1000;
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

derms::v1::DerBirth GoodBirth() {
  derms::v1::DerBirth b;
  b.set_der_id("bat-1");
  b.set_bd_seq(1);
  b.set_der_type(derms::v1::BATTERY);
  b.set_max_discharge_kw(10);
  b.set_max_charge_kw(7.5);
  b.set_energy_capacity_kwh(20);
  b.set_substation_id("sub-1");
  b.set_feeder_id("feeder_3");
  b.set_latitude(45.5);
  b.set_longitude(-73.6);
  b.add_tags("garage");
  b.set_timestamp_ms(kNow);
  return b;
}

derms::v1::DerStatus GoodStatus() {
  derms::v1::DerStatus s;
  s.set_der_id("bat-1");
  s.set_online(false);
  s.set_bd_seq(3);
  s.set_timestamp_ms(kNow);
  return s;
}

derms::v1::Telemetry GoodTelemetry() {
  derms::v1::Telemetry t;
  t.set_der_id("bat-1");
  t.set_seq(17);
  t.set_timestamp_ms(kNow);
  t.set_active_power_kw(-3.2);
  t.set_reactive_power_kvar(0.1);
  t.set_soc_pct(55);
  t.set_voltage_v(240.5);
  t.set_frequency_hz(60.01);
  t.set_setpoint_kw(-3.2);
  t.set_available_discharge_kw(10);
  t.set_available_charge_kw(7.5);
  return t;
}

derms::v1::ControlResponse GoodResponse() {
  derms::v1::ControlResponse r;
  r.set_command_id("cmd-1");
  r.set_status(derms::v1::CLAMPED);
  r.set_applied_kw(10);
  r.set_reason("target_kw 12 outside the device's range now [-7.5, 10] kW");
  r.set_timestamp_ms(kNow);
  r.set_der_id("bat-1");
  return r;
}

derms::v1::GridStatus GoodGrid() {
  derms::v1::GridStatus g;
  g.set_substation_id("sub-1");
  g.set_timestamp_ms(kNow);
  g.set_frequency_hz(59.98);
  g.set_voltage_pu(1.01);
  g.set_load_kw(1200);
  g.set_supply_kw(1000);
  return g;
}

derms::v1::DispatchRequest GoodDispatch() {
  derms::v1::DispatchRequest d;
  d.set_request_id("req-1");
  d.set_target_kw(250);
  d.set_start_ms(0);
  d.set_duration_s(900);
  return d;
}

// A message as received: `m` serialized with an extra varint field appended,
// which overrides the field (how an unknown enum value arrives on the wire).
template <typename M>
M WithVarint(const M& m, int field, uint8_t value) {
  std::string bytes = m.SerializeAsString();
  bytes.push_back(static_cast<char>(field << 3));  // wire type 0
  bytes.push_back(static_cast<char>(value));
  M out;
  REQUIRE(out.ParseFromString(bytes));
  return out;
}

void RequireOk(const derms::Status& s) {
  INFO(s.ToString());
  CHECK(s.ok());
}

// Rejected with `code`, naming the input's id and the field.
void RequireRejected(const derms::Status& s, const std::string& code, const std::string& id,
                     const std::string& field) {
  INFO(s.ToString());
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == code);
  CHECK_THAT(s.message(), Catch::Contains("'" + id + "'") && Catch::Contains(field));
}

void RequireInvalid(const derms::Status& s, const std::string& id, const std::string& field) {
  RequireRejected(s, "invalid_field", id, field);
}

}  // namespace

TEST_CASE("a good birth is accepted", "[unit][validation]") {
  RequireOk(reg::ValidateBirth(GoodBirth(), "bat-1"));
  auto minimal = GoodBirth();
  minimal.clear_feeder_id();  // optional identifiers may be empty
  minimal.clear_tags();
  minimal.set_max_charge_kw(0);
  RequireOk(reg::ValidateBirth(minimal, "bat-1"));
}

TEST_CASE("a birth whose der_id is not the topic's is an id_mismatch", "[unit][validation]") {
  auto s = reg::ValidateBirth(GoodBirth(), "bat-2");
  RequireRejected(s, "id_mismatch", "bat-2", "der_id");
  CHECK_THAT(s.message(), Catch::Contains("bat-1"));
}

TEST_CASE("a birth with a bad field is rejected naming the DER and the field",
          "[unit][validation]") {
  auto check = [](derms::v1::DerBirth b, const std::string& field) {
    INFO("field " << field);
    RequireInvalid(reg::ValidateBirth(b, "bat-1"), "bat-1", field);
  };
  auto b = GoodBirth();
  b.set_bd_seq(0);
  check(b, "bd_seq");
  check(WithVarint(GoodBirth(), 3, 99), "der_type");
  b = GoodBirth();
  b.set_der_type(derms::v1::DER_TYPE_UNSPECIFIED);
  check(b, "der_type");
  b = GoodBirth();
  b.set_max_discharge_kw(kNaN);
  check(b, "max_discharge_kw");
  b = GoodBirth();
  b.set_max_discharge_kw(kInf);
  check(b, "max_discharge_kw");
  b = GoodBirth();
  b.set_max_charge_kw(-1);
  check(b, "max_charge_kw");
  b = GoodBirth();
  b.set_energy_capacity_kwh(-kInf);
  check(b, "energy_capacity_kwh");
  b = GoodBirth();
  b.set_substation_id("sub 1");
  check(b, "substation_id");
  b = GoodBirth();
  b.set_substation_id("sub/1");
  check(b, "substation_id");
  b = GoodBirth();
  b.clear_substation_id();
  check(b, "substation_id");
  b = GoodBirth();
  b.set_feeder_id("feeder#3");
  check(b, "feeder_id");
  b = GoodBirth();
  b.set_latitude(91);
  check(b, "latitude");
  b = GoodBirth();
  b.set_longitude(kNaN);
  check(b, "longitude");
  b = GoodBirth();
  b.set_timestamp_ms(0);
  check(b, "timestamp_ms");
  b = GoodBirth();
  b.add_tags("");
  check(b, "tags");
}

TEST_CASE("a status is checked for its der_id and bd_seq", "[unit][validation]") {
  RequireOk(reg::ValidateStatus(GoodStatus(), "bat-1"));
  RequireRejected(reg::ValidateStatus(GoodStatus(), "pv-9"), "id_mismatch", "pv-9", "der_id");
  auto s = GoodStatus();
  s.set_bd_seq(0);
  RequireInvalid(reg::ValidateStatus(s, "bat-1"), "bat-1", "bd_seq");
}

TEST_CASE("good telemetry is accepted, with or without optional fields", "[unit][validation]") {
  RequireOk(reg::ValidateTelemetry(GoodTelemetry(), "bat-1", kNow));
  auto t = GoodTelemetry();
  t.clear_soc_pct();
  t.clear_setpoint_kw();
  RequireOk(reg::ValidateTelemetry(t, "bat-1", kNow));
  t = GoodTelemetry();
  t.set_timestamp_ms(kNow + kDayMs);  // a day ahead is still tolerated
  RequireOk(reg::ValidateTelemetry(t, "bat-1", kNow));
}

TEST_CASE("telemetry whose der_id is not the topic's is an id_mismatch", "[unit][validation]") {
  RequireRejected(reg::ValidateTelemetry(GoodTelemetry(), "bat-2", kNow), "id_mismatch", "bat-2",
                  "der_id");
}

TEST_CASE("telemetry with a bad field is rejected naming the DER and the field",
          "[unit][validation]") {
  auto check = [](derms::v1::Telemetry t, const std::string& field) {
    INFO("field " << field);
    RequireInvalid(reg::ValidateTelemetry(t, "bat-1", kNow), "bat-1", field);
  };
  auto t = GoodTelemetry();
  t.set_soc_pct(140);
  check(t, "soc_pct");
  t = GoodTelemetry();
  t.set_soc_pct(-0.5);
  check(t, "soc_pct");
  t = GoodTelemetry();
  t.set_active_power_kw(kNaN);
  check(t, "active_power_kw");
  t = GoodTelemetry();
  t.set_reactive_power_kvar(-kInf);
  check(t, "reactive_power_kvar");
  t = GoodTelemetry();
  t.set_voltage_v(kInf);
  check(t, "voltage_v");
  t = GoodTelemetry();
  t.set_frequency_hz(kNaN);
  check(t, "frequency_hz");
  t = GoodTelemetry();
  t.set_setpoint_kw(kNaN);
  check(t, "setpoint_kw");
  t = GoodTelemetry();
  t.set_baseline_kw(kInf);
  check(t, "baseline_kw");
  t = GoodTelemetry();
  t.set_available_discharge_kw(-1);
  check(t, "available_discharge_kw");
  t = GoodTelemetry();
  t.set_seq(0);
  check(t, "seq");
  t = GoodTelemetry();
  t.set_timestamp_ms(kNow + kDayMs + 1);
  check(t, "timestamp_ms");
  t = GoodTelemetry();
  t.set_timestamp_ms(kNow + 30 * kDayMs);
  check(t, "timestamp_ms");
  t = GoodTelemetry();
  t.set_timestamp_ms(12345);  // a clock never set
  check(t, "timestamp_ms");
  derms::v1::Alarm alarm;
  alarm.set_code("X");
  t = GoodTelemetry();
  *t.add_alarms() = WithVarint(alarm, 2, 42);  // severity 42
  check(t, "severity");
}

TEST_CASE("a good response is accepted", "[unit][validation]") {
  RequireOk(reg::ValidateResponse(GoodResponse(), "bat-1"));
  auto r = GoodResponse();
  r.clear_der_id();  // the der_id extension is optional
  RequireOk(reg::ValidateResponse(r, "bat-1"));
  r = GoodResponse();
  r.set_status(derms::v1::APPLIED);
  r.clear_reason();  // only REJECTED and CLAMPED need one
  RequireOk(reg::ValidateResponse(r, "bat-1"));
}

TEST_CASE("a response with a bad field is rejected naming the DER and the field",
          "[unit][validation]") {
  RequireRejected(reg::ValidateResponse(GoodResponse(), "bat-7"), "id_mismatch", "bat-7", "der_id");
  auto check = [](derms::v1::ControlResponse r, const std::string& field) {
    INFO("field " << field);
    RequireInvalid(reg::ValidateResponse(r, "bat-1"), "bat-1", field);
  };
  auto r = GoodResponse();
  r.clear_reason();
  check(r, "reason");  // CLAMPED without a reason
  r.set_status(derms::v1::REJECTED);
  check(r, "reason");
  r = GoodResponse();
  r.set_applied_kw(kNaN);
  check(r, "applied_kw");
  r = GoodResponse();
  r.clear_command_id();
  check(r, "command_id");
  r = GoodResponse();
  r.set_status(derms::v1::CONTROL_STATUS_UNSPECIFIED);
  check(r, "status");
  check(WithVarint(GoodResponse(), 2, 99), "status");
}

TEST_CASE("a grid status is checked for its substation and values", "[unit][validation]") {
  RequireOk(reg::ValidateGridStatus(GoodGrid(), "sub-1"));
  auto g = GoodGrid();
  g.clear_substation_id();  // the topic names it
  RequireOk(reg::ValidateGridStatus(g, "sub-1"));

  RequireRejected(reg::ValidateGridStatus(GoodGrid(), "sub-2"), "id_mismatch", "sub-2",
                  "substation_id");
  g = GoodGrid();
  g.set_load_kw(kNaN);
  RequireInvalid(reg::ValidateGridStatus(g, "sub-1"), "sub-1", "load_kw");
  g = GoodGrid();
  g.set_supply_kw(kInf);
  RequireInvalid(reg::ValidateGridStatus(g, "sub-1"), "sub-1", "supply_kw");
  g = GoodGrid();
  g.set_voltage_pu(11);
  RequireInvalid(reg::ValidateGridStatus(g, "sub-1"), "sub-1", "voltage_pu");
}

TEST_CASE("a dispatch request is checked for its id, target, start and duration",
          "[unit][validation]") {
  RequireOk(reg::ValidateDispatchRequest(GoodDispatch(), "fleet-1", kNow));
  auto d = GoodDispatch();
  d.set_duration_s(0);
  RequireInvalid(reg::ValidateDispatchRequest(d, "fleet-1", kNow), "fleet-1", "duration_s");
  d = GoodDispatch();
  d.set_target_kw(kNaN);
  RequireInvalid(reg::ValidateDispatchRequest(d, "fleet-1", kNow), "fleet-1", "target_kw");
  d = GoodDispatch();
  d.set_target_kw(-kInf);
  RequireInvalid(reg::ValidateDispatchRequest(d, "fleet-1", kNow), "fleet-1", "target_kw");
  d = GoodDispatch();
  d.clear_request_id();
  RequireInvalid(reg::ValidateDispatchRequest(d, "fleet-1", kNow), "fleet-1", "request_id");
  d = GoodDispatch();
  d.set_start_ms(-1);
  RequireInvalid(reg::ValidateDispatchRequest(d, "fleet-1", kNow), "fleet-1", "start_ms");
  // Already over, or so far ahead that its end would overflow the clock.
  d.set_start_ms(kNow - kDayMs);
  RequireInvalid(reg::ValidateDispatchRequest(d, "fleet-1", kNow), "fleet-1", "start_ms");
  d.set_start_ms(9223372036854775000LL);
  RequireInvalid(reg::ValidateDispatchRequest(d, "fleet-1", kNow), "fleet-1", "start_ms");
  d.set_start_ms(kNow + kDayMs);
  RequireOk(reg::ValidateDispatchRequest(d, "fleet-1", kNow));
  d = GoodDispatch();
  d.set_duration_s(4000000000u);
  RequireInvalid(reg::ValidateDispatchRequest(d, "fleet-1", kNow), "fleet-1", "duration_s");
}

// Telemetry against what its DER declared at birth.
namespace {

derms::v1::DerBirth Wind50() {
  derms::v1::DerBirth b = GoodBirth();
  b.set_der_id("wind-3");
  b.set_der_type(derms::v1::WIND);
  b.set_max_discharge_kw(50);
  b.set_max_charge_kw(0);
  return b;
}

derms::v1::Telemetry WindSample(double active_power_kw) {
  derms::v1::Telemetry t;
  t.set_der_id("wind-3");
  t.set_seq(5);
  t.set_timestamp_ms(kNow);
  t.set_active_power_kw(active_power_kw);
  t.set_reactive_power_kvar(0.05 * active_power_kw);
  t.set_voltage_v(240);
  t.set_frequency_hz(60);
  t.set_available_discharge_kw(std::max(0.0, active_power_kw));
  t.set_available_charge_kw(0);
  t.set_baseline_kw(active_power_kw);
  return t;
}

void RequireImplausible(const derms::Status& s, const std::string& field) {
  RequireRejected(s, "implausible", "wind-3", field);
}

}  // namespace

TEST_CASE("telemetry within the nameplate and its tolerance is plausible", "[unit][validation]") {
  RequireOk(reg::CheckTelemetryPlausible(WindSample(30), Wind50(), kNow));
  RequireOk(reg::CheckTelemetryPlausible(WindSample(55.5), Wind50(), kNow));  // 50 + 10 % + 0.5
  RequireOk(reg::CheckTelemetryPlausible(WindSample(-0.5), Wind50(), kNow));  // standby draw
  RequireOk(reg::CheckTelemetryPlausible(GoodTelemetry(), GoodBirth(), kNow));
  // Not measured: 0 volts, 0 hertz.
  auto unmeasured = WindSample(10);
  unmeasured.set_voltage_v(0);
  unmeasured.set_frequency_hz(0);
  RequireOk(reg::CheckTelemetryPlausible(unmeasured, Wind50(), kNow));
  // A sample from the edge's buffer may be old.
  auto old = WindSample(10);
  old.set_timestamp_ms(kNow - 7 * kDayMs);
  old.set_is_historical(true);
  RequireOk(reg::CheckTelemetryPlausible(old, Wind50(), kNow));
}

TEST_CASE("900000 kW from a 50 kW wind turbine is implausible, naming the value and the rule",
          "[unit][validation]") {
  auto s = reg::CheckTelemetryPlausible(WindSample(900000), Wind50(), kNow);
  RequireImplausible(s, "active_power_kw");
  CHECK(s.message() ==
        "telemetry from der 'wind-3': active_power_kw 900000 outside [-0.5, 55.5] (nameplate: "
        "discharge 50 kW, charge 0 kW; + 10 % + 0.5 kW)");
  RequireImplausible(reg::CheckTelemetryPlausible(WindSample(55.6), Wind50(), kNow),
                     "active_power_kw");
  // A turbine declared no charge rating: it cannot import 5 kW.
  RequireImplausible(reg::CheckTelemetryPlausible(WindSample(-5), Wind50(), kNow),
                     "active_power_kw");
}

TEST_CASE("every power value of telemetry is held to the nameplate", "[unit][validation]") {
  auto t = WindSample(20);
  t.set_setpoint_kw(80);
  RequireImplausible(reg::CheckTelemetryPlausible(t, Wind50(), kNow), "setpoint_kw 80");

  t = WindSample(20);
  t.set_baseline_kw(-40);
  RequireImplausible(reg::CheckTelemetryPlausible(t, Wind50(), kNow), "baseline_kw -40");

  t = WindSample(20);
  t.set_available_discharge_kw(900);
  RequireImplausible(reg::CheckTelemetryPlausible(t, Wind50(), kNow), "available_discharge_kw");

  t = WindSample(20);
  t.set_available_charge_kw(3);
  RequireImplausible(reg::CheckTelemetryPlausible(t, Wind50(), kNow), "available_charge_kw 3");

  t = WindSample(20);
  t.set_reactive_power_kvar(-56);
  RequireImplausible(reg::CheckTelemetryPlausible(t, Wind50(), kNow), "reactive_power_kvar -56");
  t.set_reactive_power_kvar(-55);
  RequireOk(reg::CheckTelemetryPlausible(t, Wind50(), kNow));

  // A battery's charge side is its max_charge_kw (7.5): 9 kW of import is too much.
  auto b = GoodTelemetry();
  b.set_active_power_kw(-9);
  b.set_setpoint_kw(-7.5);
  auto s = reg::CheckTelemetryPlausible(b, GoodBirth(), kNow);
  INFO(s.ToString());
  CHECK(s.code() == "implausible");
  CHECK_THAT(s.message(), Catch::Contains("'bat-1'") && Catch::Contains("active_power_kw -9 ") &&
                              Catch::Contains("[-8.75"));
}

TEST_CASE("voltage, frequency and the clock are held to what a grid and a clock can be",
          "[unit][validation]") {
  auto t = WindSample(20);
  t.set_voltage_v(480000);
  RequireImplausible(reg::CheckTelemetryPlausible(t, Wind50(), kNow), "voltage_v 480000");

  t = WindSample(20);
  t.set_frequency_hz(600);
  RequireImplausible(reg::CheckTelemetryPlausible(t, Wind50(), kNow), "frequency_hz 600");
  t.set_frequency_hz(30);
  RequireImplausible(reg::CheckTelemetryPlausible(t, Wind50(), kNow), "frequency_hz 30");
  t.set_frequency_hz(49.9);
  RequireOk(reg::CheckTelemetryPlausible(t, Wind50(), kNow));

  t = WindSample(20);
  t.set_timestamp_ms(kNow + 10 * 60 * 1000);
  RequireImplausible(reg::CheckTelemetryPlausible(t, Wind50(), kNow), "timestamp_ms");
  t.set_timestamp_ms(kNow + 60 * 1000);
  RequireOk(reg::CheckTelemetryPlausible(t, Wind50(), kNow));
}
