// Payload codec: protobuf binary for device topics, canonical JSON (snake_case
// out, snake_case or lowerCamelCase in) for operator topics.
#include <catch2/catch.hpp>
#include <limits>
#include <string>

#include "common/codec.h"
#include "derms/v1/derms.pb.h"

namespace codec = derms::codec;

namespace {

derms::v1::GridStatus SampleGrid() {
  derms::v1::GridStatus g;
  g.set_substation_id("sub-7");
  g.set_timestamp_ms(1767225600000);
  g.set_frequency_hz(59.98);
  g.set_voltage_pu(1.02);
  g.set_load_kw(1250.5);
  g.set_supply_kw(1100.25);
  return g;
}

derms::v1::Telemetry SampleTelemetry() {
  derms::v1::Telemetry t;
  t.set_der_id("bat-1");
  t.set_seq(42);
  t.set_timestamp_ms(1767225600000);
  t.set_active_power_kw(-3.5);
  t.set_soc_pct(61.25);
  auto* alarm = t.add_alarms();
  alarm->set_code("SOC_LOW");
  alarm->set_severity(derms::v1::WARNING);
  return t;
}

void RequireDecodeError(const derms::Status& s, const std::string& what) {
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == "decode_error");
  CHECK_THAT(s.message(), Catch::Contains(what));
}

}  // namespace

TEST_CASE("a payload is JSON when its first non-blank byte is '{'", "[unit][codec]") {
  CHECK(codec::LooksLikeJson("{}"));
  CHECK(codec::LooksLikeJson("{\"load_kw\": 1}"));
  CHECK(codec::LooksLikeJson("  \t\r\n{\"load_kw\": 1}"));
  CHECK_FALSE(codec::LooksLikeJson(""));
  CHECK_FALSE(codec::LooksLikeJson("   "));
  CHECK_FALSE(codec::LooksLikeJson("[1]"));
  CHECK_FALSE(codec::LooksLikeJson("x{"));
  CHECK_FALSE(codec::LooksLikeJson(codec::ToBinary(SampleGrid())));
}

TEST_CASE("binary encoding round trips a message", "[unit][codec]") {
  derms::v1::Telemetry in = SampleTelemetry();
  derms::v1::Telemetry out;
  out.set_run_time_s(99);  // must be cleared by the parse
  REQUIRE(codec::ParseBinary(codec::ToBinary(in), "telemetry", &out).ok());
  CHECK(out.der_id() == "bat-1");
  CHECK(out.seq() == 42);
  CHECK(out.timestamp_ms() == 1767225600000);
  CHECK(out.active_power_kw() == -3.5);
  REQUIRE(out.has_soc_pct());
  CHECK(out.soc_pct() == 61.25);
  CHECK_FALSE(out.has_setpoint_kw());
  CHECK(out.run_time_s() == 0);
  REQUIRE(out.alarms_size() == 1);
  CHECK(out.alarms(0).severity() == derms::v1::WARNING);
}

TEST_CASE("JSON output uses the contract's snake_case names and round trips", "[unit][codec]") {
  std::string json = codec::ToJson(SampleGrid());
  CHECK(json.find('\n') == std::string::npos);  // one line
  CHECK_THAT(json, Catch::Contains("\"load_kw\"") && Catch::Contains("\"supply_kw\"") &&
                       Catch::Contains("\"substation_id\"") && Catch::Contains("\"timestamp_ms\""));
  CHECK_THAT(json, !Catch::Contains("loadKw"));
  derms::v1::GridStatus back;
  REQUIRE(codec::ParseJson(json, "grid status", &back).ok());
  CHECK(back.SerializeAsString() == SampleGrid().SerializeAsString());
}

TEST_CASE("JSON output prints zero values", "[unit][codec]") {
  derms::v1::GridStatus g;
  g.set_substation_id("sub-7");
  std::string json = codec::ToJson(g);
  CHECK_THAT(json, Catch::Contains("\"load_kw\":0") && Catch::Contains("\"frequency_hz\":0"));
}

TEST_CASE("JSON input accepts lowerCamelCase names too", "[unit][codec]") {
  derms::v1::GridStatus g;
  REQUIRE(
      codec::ParseJson(R"({"substationId":"sub-7","loadKw":12.5,"supply_kw":3})", "grid", &g).ok());
  CHECK(g.substation_id() == "sub-7");
  CHECK(g.load_kw() == 12.5);
  CHECK(g.supply_kw() == 3);
}

TEST_CASE("JSON input with an unknown field is a decode_error naming the input", "[unit][codec]") {
  derms::v1::GridStatus g;
  derms::Status s = codec::ParseJson(R"({"substation_id":"sub-7","load_kwh":5})",
                                     "grid status for substation 'sub-7'", &g);
  RequireDecodeError(s, "grid status for substation 'sub-7'");
  CHECK_THAT(s.message(), Catch::Contains("load_kwh"));
}

TEST_CASE("malformed JSON is a decode_error naming the input", "[unit][codec]") {
  derms::v1::DispatchRequest r;
  RequireDecodeError(codec::ParseJson("{\"request_id\":", "dispatch for vder 'v1'", &r),
                     "dispatch for vder 'v1'");
  RequireDecodeError(codec::ParseJson("{\"target_kw\":\"lots\"}", "dispatch for vder 'v1'", &r),
                     "dispatch for vder 'v1'");
  RequireDecodeError(codec::ParseJson("not json", "dispatch for vder 'v1'", &r),
                     "dispatch for vder 'v1'");
}

TEST_CASE("bytes that are not valid protobuf are a decode_error naming the input",
          "[unit][codec]") {
  derms::v1::Telemetry t;
  const std::string what = "telemetry from der 'bat-1'";
  // A varint tag that never ends.
  RequireDecodeError(codec::ParseBinary("\xff\xff\xff", what, &t), what);
  // Field 1 (der_id), length 5, but only 2 bytes follow.
  RequireDecodeError(codec::ParseBinary(std::string("\x0a\x05"
                                                    "ab",
                                                    4),
                                        what, &t),
                     what);
  // A valid message cut in the middle of its der_id.
  std::string full = codec::ToBinary(SampleTelemetry());
  RequireDecodeError(codec::ParseBinary(full.substr(0, 4), what, &t), what);
}

TEST_CASE("operator payloads are decoded as JSON or binary by their first byte", "[unit][codec]") {
  derms::v1::GridStatus from_json;
  REQUIRE(codec::ParseOperator("  {\"load_kw\": 7.5}", "grid", &from_json).ok());
  CHECK(from_json.load_kw() == 7.5);

  derms::v1::GridStatus from_binary;
  REQUIRE(codec::ParseOperator(codec::ToBinary(SampleGrid()), "grid", &from_binary).ok());
  CHECK(from_binary.load_kw() == 1250.5);
  CHECK(from_binary.substation_id() == "sub-7");

  // A JSON-looking payload is never read as binary: broken JSON is an error.
  derms::v1::GridStatus broken;
  RequireDecodeError(codec::ParseOperator(" {\"load_kw\": }", "grid", &broken), "grid");
}

TEST_CASE("JSON people read is rounded to what its units mean, binary keeps every digit",
          "[unit][codec]") {
  derms::v1::DispatchResult r;
  r.set_target_kw(5.999999999999992);
  r.set_shortfall_kw(-7.99e-15);
  r.set_allocated_kw(72.78349);
  r.set_timestamp_ms(1767225600123);
  std::string json = codec::ToOperatorJson(r);
  CHECK_THAT(json, Catch::Contains("\"target_kw\":6,"));
  CHECK_THAT(json, Catch::Contains("\"shortfall_kw\":0,"));
  CHECK_THAT(json, Catch::Contains("\"allocated_kw\":72.783,"));
  CHECK_THAT(json, Catch::Contains("\"timestamp_ms\":\"1767225600123\""));
  derms::v1::DispatchResult back;
  REQUIRE(codec::ParseBinary(codec::ToBinary(r), "", &back).ok());
  CHECK(back.target_kw() == 5.999999999999992);

  derms::v1::ScheduleResult s;
  auto* slot = s.add_slots();
  slot->set_price_per_mwh(42.4999999);
  slot->set_power_kw(1.0 / 3);
  s.set_cost(0.71499999);
  s.set_energy_kwh(std::numeric_limits<double>::quiet_NaN());
  auto* device = s.add_devices();
  device->set_grid_energy_kwh(2.0 / 3);
  json = codec::ToOperatorJson(s);
  CHECK_THAT(json, Catch::Contains("\"price_per_mwh\":42.5"));
  CHECK_THAT(json, Catch::Contains("\"power_kw\":0.333}"));
  CHECK_THAT(json, Catch::Contains("\"cost\":0.71,"));
  CHECK_THAT(json, Catch::Contains("\"grid_energy_kwh\":0.667,"));
  CHECK_THAT(json, Catch::Contains("\"energy_kwh\":\"NaN\""));
}
