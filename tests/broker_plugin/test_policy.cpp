#include <catch2/catch.hpp>

#include "broker_plugin/policy.h"

using namespace derms::broker;

namespace {

PluginOptions Roles() {
  PluginOptions o;
  o.aggregators = {"agg"};
  o.operators = {"ops"};
  o.dispatchers = {"utility"};
  return o;
}

std::string_view Rule(const char* user, Access access, std::string_view topic) {
  PluginOptions o = Roles();
  auto who = IdentityOf(user, o);
  REQUIRE(who.has_value());
  AclDecision d = CheckAcl(*who, access, topic, o);
  return d.allowed ? std::string_view("allowed") : d.rule;
}

}  // namespace

TEST_CASE("user names map to roles, and any other valid one is a DER", "[policy]") {
  PluginOptions o = Roles();
  CHECK(IdentityOf("agg", o)->role == Role::kAggregator);
  CHECK(IdentityOf("ops", o)->role == Role::kOperator);
  CHECK(IdentityOf("utility", o)->role == Role::kDispatcher);
  CHECK(IdentityOf("bat-1", o)->role == Role::kDer);
  CHECK(IdentityOf("bat-1", o)->name == "bat-1");
  CHECK_FALSE(IdentityOf(nullptr, o).has_value());
  CHECK_FALSE(IdentityOf("", o).has_value());
  CHECK_FALSE(IdentityOf("CN=bat 1", o).has_value());
  o.anonymous_role = "aggregator";
  CHECK(IdentityOf(nullptr, o)->role == Role::kAggregator);
  CHECK(IdentityOf("", o)->name == "anonymous");
}

TEST_CASE("a DER publishes only its own uplink topics", "[policy]") {
  for (const char* leaf : {"birth", "status", "telemetry", "response"}) {
    CHECK(Rule("bat-1", Access::kWrite, std::string("derms/v1/der/bat-1/") + leaf) == "allowed");
    CHECK(Rule("bat-1", Access::kWrite, std::string("derms/v1/der/bat-2/") + leaf) ==
          kRuleDerOtherDer);
  }
  CHECK(Rule("bat-1", Access::kWrite, "derms/v1/der/bat-1/control") == kRuleDerWrongLeaf);
  CHECK(Rule("bat-1", Access::kWrite, "derms/v1/der/bat-1/telemetry/x") == kRuleDerWrongLeaf);
  CHECK(Rule("bat-1", Access::kWrite, "derms/v1/grid/sub-1/status") == kRuleDerOutside);
  CHECK(Rule("bat-1", Access::kWrite, "derms/v1/broker/status") == kRuleDerOutside);
  CHECK(Rule("bat-1", Access::kWrite, "other/topic") == kRuleDerOutside);
  // A prefix of its id is another DER.
  CHECK(Rule("bat-1", Access::kWrite, "derms/v1/der/bat-10/telemetry") == kRuleDerOtherDer);
  CHECK(Rule("bat-10", Access::kWrite, "derms/v1/der/bat-1/telemetry") == kRuleDerOtherDer);
}

TEST_CASE("a DER subscribes to and reads only its own control and cmd", "[policy]") {
  CHECK(Rule("bat-1", Access::kSubscribe, "derms/v1/der/bat-1/control") == "allowed");
  CHECK(Rule("bat-1", Access::kSubscribe, "derms/v1/der/bat-1/cmd") == "allowed");
  CHECK(Rule("bat-1", Access::kRead, "derms/v1/der/bat-1/control") == "allowed");
  CHECK(Rule("bat-1", Access::kSubscribe, "derms/v1/der/bat-2/control") == kRuleDerOtherDer);
  CHECK(Rule("bat-1", Access::kRead, "derms/v1/der/bat-2/control") == kRuleDerOtherDer);
  CHECK(Rule("bat-1", Access::kSubscribe, "derms/v1/der/+/control") == kRuleDerWildcard);
  CHECK(Rule("bat-1", Access::kSubscribe, "#") == kRuleDerWildcard);
  CHECK(Rule("bat-1", Access::kSubscribe, "derms/v1/der/bat-1/#") == kRuleDerWildcard);
  CHECK(Rule("bat-1", Access::kRead, "derms/v1/der/bat-1/telemetry") == kRuleDerWrongLeaf);
  CHECK(Rule("bat-1", Access::kRead, "derms/v1/aggregator/status") == kRuleDerOutside);
  CHECK(Rule("bat-1", Access::kUnsubscribe, "derms/v1/der/bat-2/control") == kRuleDerOtherDer);
  CHECK(Rule("bat-1", Access::kUnsubscribe, "derms/v1/der/bat-1/control") == "allowed");
}

TEST_CASE("operators read but never publish, and see no controls by default", "[policy]") {
  CHECK(Rule("ops", Access::kWrite, "derms/v1/der/bat-1/control") == kRuleReadOnly);
  CHECK(Rule("ops", Access::kWrite, "derms/v1/vder/north/dispatch") == kRuleReadOnly);
  CHECK(Rule("ops", Access::kSubscribe, "derms/v1/#") == "allowed");
  CHECK(Rule("ops", Access::kSubscribe, "#") == kRuleNotForRole);
  CHECK(Rule("ops", Access::kRead, "derms/v1/der/bat-1/telemetry") == "allowed");
  CHECK(Rule("ops", Access::kRead, "derms/v1/der/bat-1/control") == kRuleNotForRole);
  CHECK(Rule("ops", Access::kRead, "derms/v1/der/bat-1/cmd") == kRuleNotForRole);
  CHECK(Rule("ops", Access::kRead, "derms/v1/aggregator/status") == "allowed");
  CHECK(Rule("ops", Access::kRead, "derms/v1/broker/status") == "allowed");
  CHECK(Rule("ops", Access::kRead, "dermsctl/42/reply") == "allowed");
  CHECK(Rule("ops", Access::kRead, "elsewhere/x") == kRuleNotForRole);
}

TEST_CASE("the dispatcher publishes grid, dispatch and schedule requests only", "[policy]") {
  CHECK(Rule("utility", Access::kWrite, "derms/v1/grid/sub-1/status") == "allowed");
  CHECK(Rule("utility", Access::kWrite, "derms/v1/vder/north/dispatch") == "allowed");
  CHECK(Rule("utility", Access::kWrite, "derms/v1/vder/north/curtail") == "allowed");
  CHECK(Rule("utility", Access::kWrite, "derms/v1/schedule/request") == "allowed");
  CHECK(Rule("utility", Access::kWrite, "derms/v1/forecast/price/NODE-A") == "allowed");
  CHECK(Rule("utility", Access::kWrite, "derms/v1/vder/north/dispatch/result") == kRuleNotForRole);
  CHECK(Rule("utility", Access::kWrite, "derms/v1/der/bat-1/control") == kRuleNotForRole);
  CHECK(Rule("utility", Access::kWrite, "derms/v1/broker/status") == kRuleBrokerTopic);
  CHECK(Rule("utility", Access::kRead, "derms/v1/vder/north/dispatch/result") == "allowed");
}

TEST_CASE("the aggregator has the cloud side but never a DER's voice", "[policy]") {
  CHECK(Rule("agg", Access::kWrite, "derms/v1/der/bat-1/control") == "allowed");
  CHECK(Rule("agg", Access::kWrite, "derms/v1/der/bat-1/cmd") == "allowed");
  CHECK(Rule("agg", Access::kWrite, "derms/v1/aggregator/status") == "allowed");
  CHECK(Rule("agg", Access::kWrite, "dermsctl/42/reply") == "allowed");
  CHECK(Rule("agg", Access::kWrite, "derms/v1/der/bat-1/telemetry") == kRuleNotForRole);
  CHECK(Rule("agg", Access::kWrite, "derms/v1/der/bat-1/birth") == kRuleNotForRole);
  CHECK(Rule("agg", Access::kWrite, "derms/v1/broker/status") == kRuleBrokerTopic);
  CHECK(Rule("agg", Access::kSubscribe, "derms/v1/der/+/telemetry") == "allowed");
  CHECK(Rule("agg", Access::kRead, "derms/v1/der/bat-1/telemetry") == "allowed");
  CHECK(Rule("agg", Access::kRead, "replies/me") == "allowed");
  CHECK(Rule("agg", Access::kSubscribe, "dermsctl/42/reply") == "allowed");
}
