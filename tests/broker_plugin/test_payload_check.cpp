#include <catch2/catch.hpp>
#include <limits>

#include "broker_plugin/payload_check.h"
#include "tests/broker_plugin/plugin_messages.h"

using namespace derms;
using namespace derms::broker;
using derms::testing::Bytes;
using derms::testing::PluginTestNowMs;
using derms::testing::ValidBirth;
using derms::testing::ValidTelemetry;

namespace {

std::string Reason(PayloadChecker& checker, const std::string& topic, const std::string& payload) {
  PayloadVerdict v = checker.Check(topic, payload, PluginTestNowMs());
  REQUIRE(v.device_topic);
  return v.status.ok() ? "ok" : v.status.code();
}

}  // namespace

TEST_CASE("valid device messages pass and say what the limiter needs", "[payload]") {
  PayloadChecker checker(16384);
  auto birth =
      checker.Check("derms/v1/der/bat-1/birth", Bytes(ValidBirth("bat-1", 7)), PluginTestNowMs());
  CHECK(birth.status.ok());
  CHECK(birth.telemetry_interval_s == 7);
  auto t = ValidTelemetry("bat-1", 3);
  t.set_is_historical(true);
  auto tel = checker.Check("derms/v1/der/bat-1/telemetry", Bytes(t), PluginTestNowMs());
  CHECK(tel.status.ok());
  CHECK(tel.historical);
  v1::DerStatus st;
  st.set_der_id("bat-1");
  st.set_online(true);
  st.set_bd_seq(1);
  CHECK(Reason(checker, "derms/v1/der/bat-1/status", Bytes(st)) == "ok");
  v1::ControlResponse r;
  r.set_command_id("c-1");
  r.set_status(v1::APPLIED);
  r.set_applied_kw(2);
  CHECK(Reason(checker, "derms/v1/der/bat-1/response", Bytes(r)) == "ok");
  v1::Control c;
  c.set_command_id("c-1");
  c.add_intervals()->set_target_kw(2);
  CHECK(Reason(checker, "derms/v1/der/bat-1/control", Bytes(c)) == "ok");
}

TEST_CASE("topics outside der/{id}/<leaf> are not the checker's business", "[payload]") {
  PayloadChecker checker(16384);
  for (const char* topic : {"derms/v1/grid/sub-1/status", "derms/v1/der/bat-1/other",
                            "derms/v1/der/bat 1/telemetry", "derms/v1/der/bat-1", "x"}) {
    auto v = checker.Check(topic, "garbage", 0);
    CHECK_FALSE(v.device_topic);
    CHECK(v.status.ok());
  }
}

TEST_CASE("each kind of bad payload is refused under its own reason", "[payload]") {
  PayloadChecker checker(1024);
  const std::string topic = "derms/v1/der/bat-1/telemetry";
  CHECK(Reason(checker, topic, std::string(1025, 'x')) == kReasonOversized);
  CHECK(Reason(checker, topic, "\xff\xff\xff") == kReasonUndecodable);
  // A birth where telemetry belongs, and the other way round: fields whose
  // wire types are not the expected message's.
  CHECK(Reason(checker, topic, Bytes(ValidBirth("bat-1"))) == kReasonWrongType);
  CHECK(Reason(checker, "derms/v1/der/bat-1/birth", Bytes(ValidTelemetry("bat-1", 1))) ==
        kReasonWrongType);
  // A field no contract message has.
  CHECK(
      Reason(checker, topic, Bytes(ValidTelemetry("bat-1", 1)) + std::string("\xa8\x06\x01", 3)) ==
      kReasonWrongType);
  CHECK(Reason(checker, topic, Bytes(ValidTelemetry("bat-2", 1))) == kReasonIdMismatch);
  CHECK(Reason(checker, "derms/v1/der/bat-1/birth", Bytes(ValidBirth("bat-2"))) ==
        kReasonIdMismatch);
  auto nan = ValidTelemetry("bat-1", 1);
  nan.set_active_power_kw(std::numeric_limits<double>::quiet_NaN());
  CHECK(Reason(checker, topic, Bytes(nan)) == kReasonNotFinite);
  auto inf = ValidTelemetry("bat-1", 1);
  inf.set_setpoint_kw(-std::numeric_limits<double>::infinity());
  CHECK(Reason(checker, topic, Bytes(inf)) == kReasonNotFinite);
  auto soc = ValidTelemetry("bat-1", 1);
  soc.set_soc_pct(140);
  CHECK(Reason(checker, topic, Bytes(soc)) == kReasonOutOfRange);
  auto seq0 = ValidTelemetry("bat-1", 0);
  CHECK(Reason(checker, topic, Bytes(seq0)) == kReasonOutOfRange);
  auto birth = ValidBirth("bat-1");
  birth.set_max_charge_kw(-1);
  CHECK(Reason(checker, "derms/v1/der/bat-1/birth", Bytes(birth)) == kReasonOutOfRange);
  v1::Control c;
  c.set_command_id("c");
  c.set_der_id("bat-2");
  CHECK(Reason(checker, "derms/v1/der/bat-1/control", Bytes(c)) == kReasonIdMismatch);
  v1::Control nan_control;
  nan_control.set_command_id("c");
  nan_control.add_intervals()->set_target_kw(std::numeric_limits<double>::quiet_NaN());
  CHECK(Reason(checker, "derms/v1/der/bat-1/control", Bytes(nan_control)) == kReasonNotFinite);
}

TEST_CASE("a refusal names the DER, the field and the rule", "[payload]") {
  PayloadChecker checker(1024);
  auto soc = ValidTelemetry("bat-1", 1);
  soc.set_soc_pct(140);
  auto v = checker.Check("derms/v1/der/bat-1/telemetry", Bytes(soc), PluginTestNowMs());
  CHECK_THAT(v.status.message(), Catch::Contains("bat-1") && Catch::Contains("soc_pct 140"));
  auto nan = ValidTelemetry("bat-1", 1);
  nan.set_voltage_v(std::numeric_limits<double>::quiet_NaN());
  v = checker.Check("derms/v1/der/bat-1/telemetry", Bytes(nan), PluginTestNowMs());
  CHECK_THAT(v.status.message(),
             Catch::Contains("telemetry from der 'bat-1'") && Catch::Contains("voltage_v"));
}
