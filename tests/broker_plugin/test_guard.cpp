#include <catch2/catch.hpp>

#include "broker_plugin/guard.h"
#include "tests/broker_plugin/plugin_messages.h"

using namespace derms;
using namespace derms::broker;
using derms::testing::Bytes;
using derms::testing::PluginTestNowMs;
using derms::testing::ValidBirth;
using derms::testing::ValidTelemetry;

namespace {

PasswordFile Passwords() {
  std::string text;
  for (const char* user : {"bat-1", "bat-2", "agg"}) {
    auto line = HashPasswordLine(user, std::string("pw-") + user, 10);
    REQUIRE(line.ok());
    text += *line + "\n";
  }
  auto file = PasswordFile::Parse(text, "test");
  REQUIRE(file.ok());
  return std::move(file).value();
}

PluginOptions Options() {
  PluginOptions o;
  o.aggregators = {"agg"};
  o.status_interval_s = 5;
  return o;
}

}  // namespace

TEST_CASE("passwords decide CONNECT, and without a file Mosquitto does", "[guard]") {
  Guard guard(Options(), Passwords(), 0);
  int a = 0;
  CHECK(guard.Authenticate(&a, "bat-1", "pw-bat-1") == Guard::AuthVerdict::kAllow);
  CHECK(guard.Authenticate(&a, "bat-1", "pw-bat-2") == Guard::AuthVerdict::kDeny);
  CHECK(guard.Authenticate(&a, "bat-9", "pw-bat-1") == Guard::AuthVerdict::kDeny);
  CHECK(guard.Authenticate(&a, nullptr, nullptr) == Guard::AuthVerdict::kDeny);
  CHECK(guard.counters().auth_accepted == 1);
  CHECK(guard.counters().auth_refused == 3);
  PluginOptions anonymous = Options();
  anonymous.anonymous_role = "operator";
  Guard local(anonymous, Passwords(), 0);
  CHECK(local.Authenticate(&a, nullptr, nullptr) == Guard::AuthVerdict::kDefer);
  CHECK(local.Authenticate(&a, "bat-1", "wrong") == Guard::AuthVerdict::kDeny);
  Guard open(Options(), std::nullopt, 0);
  CHECK(open.Authenticate(&a, "x", "y") == Guard::AuthVerdict::kDefer);
}

TEST_CASE("denials and refusals are counted by rule, reason and DER", "[guard]") {
  Guard guard(Options(), Passwords(), 0);
  int a = 0, b = 0;
  const int64_t now = PluginTestNowMs();
  REQUIRE(guard.Authenticate(&a, "bat-1", "pw-bat-1") == Guard::AuthVerdict::kAllow);
  REQUIRE(guard.Authenticate(&b, "bat-2", "pw-bat-2") == Guard::AuthVerdict::kAllow);
  for (int i = 0; i < 3; ++i) {
    CHECK_FALSE(
        guard.CheckAcl(&a, "bat-1", Access::kWrite, "derms/v1/der/bat-2/telemetry").allowed);
  }
  CHECK_FALSE(
      guard.CheckAcl(&a, "bat-1", Access::kSubscribe, "derms/v1/der/bat-2/control").allowed);
  CHECK(guard.CheckAcl(&b, "bat-2", Access::kWrite, "derms/v1/der/bat-2/telemetry").allowed);
  Decision d = guard.CheckMessage(&a, "bat-1", "derms/v1/der/bat-1/telemetry",
                                  Bytes(ValidTelemetry("bat-2", 1)), now, 0);
  CHECK_FALSE(d.allowed);
  CHECK(d.reason == kReasonIdMismatch);
  CHECK_THAT(d.message, Catch::Contains("bat-2"));
  CHECK(guard
            .CheckMessage(&b, "bat-2", "derms/v1/der/bat-2/telemetry",
                          Bytes(ValidTelemetry("bat-2", 1)), now, 0)
            .allowed);
  // Not a device topic: not checked, not counted.
  CHECK(guard.CheckMessage(&b, "bat-2", "derms/v1/grid/x/status", "junk", now, 0).allowed);

  const auto& c = guard.counters();
  CHECK(c.acl_denied_by_rule.at("der_other_der") == 4);
  CHECK(c.rejected_by_reason.at("id_mismatch") == 1);
  CHECK(c.messages_checked == 2);
  CHECK(c.messages_accepted == 1);
  std::string json = guard.RenderStatus(now);
  CHECK_THAT(json, Catch::Contains(R"("connected_ders":2)"));
  CHECK_THAT(json, Catch::Contains(R"("der_other_der":4)"));
  CHECK_THAT(json, Catch::Contains(R"("id_mismatch":1)"));
  CHECK_THAT(
      json,
      Catch::Contains(
          R"("top_offenders":[{"name":"bat-1","rejected":1,"acl_denied":4,"rate_limited":0}])"));
  guard.OnDisconnect(&a);
  CHECK_THAT(guard.RenderStatus(now), Catch::Contains(R"("connected_ders":1)"));
}

TEST_CASE("a birth sets the DER's rate, and a flood is dropped and, if asked, kicked", "[guard]") {
  PluginOptions o = Options();
  o.kick_after_drops = 5;
  o.rate_burst = 2;
  Guard guard(o, std::nullopt, 0);
  int a = 0;
  const int64_t now = PluginTestNowMs();
  REQUIRE(guard
              .CheckMessage(&a, "bat-1", "derms/v1/der/bat-1/birth", Bytes(ValidBirth("bat-1", 10)),
                            now, 0)
              .allowed);
  int admitted = 0;
  for (int i = 1; i <= 8; ++i) {
    admitted += guard
                    .CheckMessage(&a, "bat-1", "derms/v1/der/bat-1/telemetry",
                                  Bytes(ValidTelemetry("bat-1", i)), now, i)
                    .allowed;
  }
  CHECK(admitted == 2);
  CHECK(guard.counters().rate_limited == 6);
  CHECK(guard.TakeKicks() == std::vector<std::string>{"bat-1"});
  CHECK(guard.TakeKicks().empty());
}

TEST_CASE("broker/status is due every status_interval_s", "[guard]") {
  Guard guard(Options(), std::nullopt, 1000);
  CHECK(guard.StatusIfDue(1000, 0).has_value());
  CHECK_FALSE(guard.StatusIfDue(2000, 4999).has_value());
  auto json = guard.StatusIfDue(6000, 5000);
  REQUIRE(json.has_value());
  CHECK_THAT(*json, Catch::StartsWith(R"({"timestamp_ms":6000,"started_at_ms":1000,)"));
}
