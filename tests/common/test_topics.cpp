// Topic names of the wire contract: identifier rule, parsing every topic kind,
// builders that round trip through Parse, and the errors for anything else.
#include <catch2/catch.hpp>
#include <string>

#include "common/topics.h"

namespace topics = derms::topics;
using topics::Kind;

namespace {

// Parses `topic` and requires it to succeed.
topics::Parsed ParseOk(const std::string& topic) {
  auto parsed = topics::Parse(topic);
  INFO("topic: " << topic << " -> " << parsed.status().ToString());
  REQUIRE(parsed.ok());
  return parsed.value();
}

// Parses `topic` and requires it to fail with `code`; returns the message.
std::string ParseError(const std::string& topic, const std::string& code) {
  auto parsed = topics::Parse(topic);
  INFO("topic: " << topic);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == code);
  return parsed.status().message();
}

}  // namespace

TEST_CASE("identifiers of 1 to 64 letters, digits, '_' and '-' are valid", "[unit][topics]") {
  CHECK(topics::IsValidId("a"));
  CHECK(topics::IsValidId("bat-1"));
  CHECK(topics::IsValidId("Sub_Station-09"));
  CHECK(topics::IsValidId("0123456789"));
  CHECK(topics::IsValidId("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"));
  CHECK(topics::IsValidId(std::string(64, 'x')));
}

TEST_CASE("identifiers that break the contract's rule are invalid", "[unit][topics]") {
  CHECK_FALSE(topics::IsValidId(""));
  CHECK_FALSE(topics::IsValidId(std::string(65, 'x')));
  CHECK_FALSE(topics::IsValidId("bat/1"));
  CHECK_FALSE(topics::IsValidId("+"));
  CHECK_FALSE(topics::IsValidId("bat#"));
  CHECK_FALSE(topics::IsValidId("bat 1"));
  CHECK_FALSE(topics::IsValidId(" bat1"));
  CHECK_FALSE(topics::IsValidId("bat.1"));
  CHECK_FALSE(topics::IsValidId("b\xC3\xA4t"));  // "bät" in UTF-8
  CHECK_FALSE(topics::IsValidId(std::string("bat\0", 4)));
}

TEST_CASE("ValidateId names the field and the rule", "[unit][topics]") {
  CHECK(topics::ValidateId("der_id", "bat-1").ok());
  derms::Status s = topics::ValidateId("der_id", "bat/1");
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == "invalid_id");
  CHECK_THAT(s.message(), Catch::Contains("der_id") && Catch::Contains("bat/1"));
}

TEST_CASE("every der/{id}/<leaf> topic parses to its kind and der_id", "[unit][topics]") {
  const std::pair<const char*, Kind> leaves[] = {
      {"birth", Kind::kDerBirth},         {"status", Kind::kDerStatus},
      {"telemetry", Kind::kDerTelemetry}, {"control", Kind::kDerControl},
      {"response", Kind::kDerResponse},   {"cmd", Kind::kDerCmd}};
  for (const auto& [leaf, kind] : leaves) {
    auto p = ParseOk(std::string("derms/v1/der/bat-1/") + leaf);
    CHECK(p.kind == kind);
    CHECK(p.id == "bat-1");
    CHECK(p.key.empty());
  }
}

TEST_CASE("aggregator, grid and vder topics parse to their kind and id", "[unit][topics]") {
  auto agg = ParseOk("derms/v1/aggregator/status");
  CHECK(agg.kind == Kind::kAggregatorStatus);
  CHECK(agg.id.empty());

  auto grid = ParseOk("derms/v1/grid/sub-7/status");
  CHECK(grid.kind == Kind::kGridStatus);
  CHECK(grid.id == "sub-7");

  auto dispatch = ParseOk("derms/v1/vder/fleet_A/dispatch");
  CHECK(dispatch.kind == Kind::kVderDispatch);
  CHECK(dispatch.id == "fleet_A");

  auto result = ParseOk("derms/v1/vder/fleet_A/dispatch/result");
  CHECK(result.kind == Kind::kVderDispatchResult);
  CHECK(result.id == "fleet_A");

  auto status = ParseOk("derms/v1/vder/fleet_A/status");
  CHECK(status.kind == Kind::kVderStatus);
  CHECK(status.id == "fleet_A");
}

TEST_CASE("events, forecast and schedule topics parse to their kind, id and key",
          "[unit][topics]") {
  auto event = ParseOk("derms/v1/events/incident");
  CHECK(event.kind == Kind::kEvent);
  CHECK(event.id == "incident");

  auto forecast = ParseOk("derms/v1/forecast/price/sub-7");
  CHECK(forecast.kind == Kind::kForecast);
  CHECK(forecast.id == "price");
  CHECK(forecast.key == "sub-7");

  auto request = ParseOk("derms/v1/schedule/request");
  CHECK(request.kind == Kind::kScheduleRequest);
  CHECK(request.id.empty());

  auto result = ParseOk("derms/v1/schedule/req-42/result");
  CHECK(result.kind == Kind::kScheduleResult);
  CHECK(result.id == "req-42");
}

TEST_CASE("every topic builder round trips through Parse", "[unit][topics]") {
  const std::string id = "Unit_07-b";
  const std::pair<std::string, Kind> built[] = {
      {topics::DerBirth(id), Kind::kDerBirth},
      {topics::DerStatus(id), Kind::kDerStatus},
      {topics::DerTelemetry(id), Kind::kDerTelemetry},
      {topics::DerControl(id), Kind::kDerControl},
      {topics::DerResponse(id), Kind::kDerResponse},
      {topics::DerCmd(id), Kind::kDerCmd},
      {topics::GridStatus(id), Kind::kGridStatus},
      {topics::VderDispatch(id), Kind::kVderDispatch},
      {topics::VderDispatchResult(id), Kind::kVderDispatchResult},
      {topics::VderStatus(id), Kind::kVderStatus},
  };
  for (const auto& [topic, kind] : built) {
    CHECK(topic.rfind("derms/v1/", 0) == 0);
    auto p = ParseOk(topic);
    CHECK(p.kind == kind);
    CHECK(p.id == id);
  }
  CHECK(topics::AggregatorStatus() == "derms/v1/aggregator/status");
  CHECK(ParseOk(topics::AggregatorStatus()).kind == Kind::kAggregatorStatus);
}

TEST_CASE("builders produce the contract's exact topic strings", "[unit][topics]") {
  CHECK(topics::DerTelemetry("bat-1") == "derms/v1/der/bat-1/telemetry");
  CHECK(topics::GridStatus("sub-1") == "derms/v1/grid/sub-1/status");
  CHECK(topics::VderDispatchResult("v1") == "derms/v1/vder/v1/dispatch/result");
  CHECK(topics::AllDers("telemetry") == "derms/v1/der/+/telemetry");
  CHECK(topics::Filter("grid/+/status") == "derms/v1/grid/+/status");
}

TEST_CASE("topics outside the contract are bad_topic", "[unit][topics]") {
  // Wrong or missing root.
  ParseError("derms/v2/der/bat-1/telemetry", "bad_topic");
  ParseError("der/bat-1/telemetry", "bad_topic");
  ParseError("/derms/v1/der/bat-1/telemetry", "bad_topic");
  ParseError("", "bad_topic");
  ParseError("derms/v1/", "bad_topic");
  // Unknown leaf or root level.
  ParseError("derms/v1/der/bat-1/telemetryx", "bad_topic");
  ParseError("derms/v1/der/bat-1/state", "bad_topic");
  ParseError("derms/v1/aggregator/health", "bad_topic");
  ParseError("derms/v1/grid/sub-1/load", "bad_topic");
  ParseError("derms/v1/vder/v1/dispatches", "bad_topic");
  ParseError("derms/v1/schedule/req-1/status", "bad_topic");
  ParseError("derms/v1/weather/sub-1", "bad_topic");
  // Extra or missing levels.
  ParseError("derms/v1/der/bat-1/telemetry/extra", "bad_topic");
  ParseError("derms/v1/der/bat-1", "bad_topic");
  ParseError("derms/v1/der/bat-1/telemetry/", "bad_topic");
  ParseError("derms/v1/aggregator/status/x", "bad_topic");
  ParseError("derms/v1/grid/sub-1/status/x", "bad_topic");
  ParseError("derms/v1/vder/v1/dispatch/result/x", "bad_topic");
  ParseError("derms/v1/events/incident/x", "bad_topic");
  ParseError("derms/v1/events", "bad_topic");
  ParseError("derms/v1/forecast/price", "bad_topic");
  ParseError("derms/v1/forecast/price/sub-1/x", "bad_topic");
  ParseError("derms/v1/schedule/request/x", "bad_topic");
  // The message quotes the topic.
  CHECK_THAT(ParseError("derms/v1/der/bat-1/nope", "bad_topic"),
             Catch::Contains("derms/v1/der/bat-1/nope"));
}

TEST_CASE("a bad identifier in a topic is invalid_id naming the field", "[unit][topics]") {
  CHECK_THAT(ParseError("derms/v1/der/bat 1/telemetry", "invalid_id"), Catch::Contains("der_id"));
  CHECK_THAT(ParseError("derms/v1/der//birth", "invalid_id"), Catch::Contains("der_id"));
  CHECK_THAT(ParseError("derms/v1/der/+/telemetry", "invalid_id"), Catch::Contains("der_id"));
  CHECK_THAT(ParseError("derms/v1/der/" + std::string(65, 'a') + "/status", "invalid_id"),
             Catch::Contains("der_id"));
  CHECK_THAT(ParseError("derms/v1/grid/sub#1/status", "invalid_id"),
             Catch::Contains("substation_id"));
  CHECK_THAT(ParseError("derms/v1/vder/v%1/dispatch", "invalid_id"), Catch::Contains("vder_id"));
  CHECK_THAT(ParseError("derms/v1/vder/v%1/dispatch/result", "invalid_id"),
             Catch::Contains("vder_id"));
  CHECK_THAT(ParseError("derms/v1/vder/v%1/status", "invalid_id"), Catch::Contains("vder_id"));
  CHECK_THAT(ParseError("derms/v1/schedule/r 1/result", "invalid_id"),
             Catch::Contains("request_id"));
  CHECK_THAT(ParseError("derms/v1/events/b\xC3\xA4"
                        "d",
                        "invalid_id"),
             Catch::Contains("kind"));
  CHECK_THAT(ParseError("derms/v1/forecast/pr!ce/sub-1", "invalid_id"),
             Catch::Contains("forecast kind"));
  CHECK_THAT(ParseError("derms/v1/forecast/price/sub 1", "invalid_id"),
             Catch::Contains("forecast key"));
}
