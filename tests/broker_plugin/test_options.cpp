#include <catch2/catch.hpp>

#include "broker_plugin/options.h"

using namespace derms::broker;

TEST_CASE("plugin options are read with their rules", "[options]") {
  auto o = ParseOptions({{"aggregators", "agg, agg-2"},
                         {"operators", "ops"},
                         {"rate_factor", "600"},
                         {"max_payload_bytes", "4096"},
                         {"operator_der_topics", "telemetry"}});
  REQUIRE(o.ok());
  CHECK(o->aggregators == std::set<std::string>{"agg", "agg-2"});
  CHECK(o->rate_factor == 600);
  CHECK(o->max_payload_bytes == 4096);
  CHECK(o->operator_der_leaves == std::set<std::string>{"telemetry"});
  CHECK(o->status_interval_s == 5);
}

TEST_CASE("a bad plugin option names the key, the value and the rule", "[options]") {
  auto check = [](std::string key, std::string value, const std::string& expected) {
    auto o = ParseOptions({{key, value}});
    REQUIRE_FALSE(o.ok());
    CHECK_THAT(o.status().message(), Catch::Contains(expected));
  };
  check("rate_factr", "5", "plugin_opt_rate_factr: not a known option");
  check("rate_factor", "fast", "plugin_opt_rate_factor 'fast': must be a number");
  check("max_payload_bytes", "10", "must be a whole number in [64,");
  check("operators", "a b", "'a b' does not match");
  check("reply_prefix", "derms/v1/", "outside derms/");
  auto twice = ParseOptions({{"aggregators", "x"}, {"operators", "x"}});
  REQUIRE_FALSE(twice.ok());
  CHECK_THAT(twice.status().message(), Catch::Contains("'x' is given more than one role"));
}
