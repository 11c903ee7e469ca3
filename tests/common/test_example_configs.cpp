// The example configuration files shipped beside the programs must load and
// validate, so the documentation cannot drift from the code.
#include <catch2/catch.hpp>

#include "cloud_aggregator/service/aggregator_options.h"
#include "common/config.h"
#include "common/option_set.h"
#include "edge_agent/agent/agent_options.h"

TEST_CASE("the edge agent's example configuration loads and validates", "[unit][config]") {
  derms::edge::AgentOptions o;
  derms::Status s =
      derms::edge::LoadAgentOptions(DERMS_SOURCE_DIR "/edge_agent/edge-agent.example.toml", &o);
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(o.Validate().ok());
  CHECK(o.der_id == "bat-0001");
  CHECK(o.nameplate.type == derms::v1::BATTERY);
  CHECK(o.nameplate.max_discharge_kw == 5.0);
  CHECK(o.substation_id == "sub-1");
  CHECK(o.tags.size() == 2);
}

TEST_CASE("the aggregator's example configuration loads and validates", "[unit][config]") {
  derms::aggregator::AggregatorOptions o;
  derms::Status s = derms::aggregator::LoadAggregatorOptions(
      DERMS_SOURCE_DIR "/cloud_aggregator/aggregator.example.toml", &o);
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(o.Validate().ok());
  CHECK(o.fleet.offline_after_intervals == 3);
  CHECK(o.dispatch.control_duration_s == 300);
  REQUIRE(o.vders.vders.size() == 7);
  CHECK(o.vders.vders[1].grid_substation == "sub-1");
  CHECK(o.vders.vders[2].policy == derms::dispatch::Policy::kSocBalance);
  CHECK_FALSE(o.vders.vders[6].dispatchable);
  CHECK(o.vders.costs.by_type.at("EV_CHARGER") == 0.05);
}

TEST_CASE("a misspelt key in a configuration file is reported with its path", "[unit][config]") {
  derms::aggregator::AggregatorOptions o;
  std::string path = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                     "/derms-bad-config.toml";
  {
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fputs("[dispatch]\ncontrol_duraton_s = 10\n", f);
    std::fclose(f);
  }
  derms::Status s = derms::aggregator::LoadAggregatorOptions(path, &o);
  std::remove(path.c_str());
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("dispatch.control_duraton_s") != std::string::npos);
}

TEST_CASE("every key the aggregator declares is set, with a comment, in its example file",
          "[unit][config]") {
  derms::aggregator::AggregatorOptions o;
  derms::config::OptionSet set;
  o.Describe(set);
  auto parsed =
      derms::config::ParseFile(DERMS_SOURCE_DIR "/cloud_aggregator/aggregator.example.toml");
  REQUIRE(parsed.ok());
  size_t checked = 0;
  for (const auto& [key, doc] : set.Docs()) {
    INFO(key);
    CHECK_FALSE(doc.empty());
    if (key.size() > 2 && key.compare(key.size() - 2, 2, ".*") == 0) {
      CHECK(parsed->at_path(key.substr(0, key.size() - 2)));
    } else {
      CHECK(parsed->at_path(key));
    }
    ++checked;
  }
  CHECK(checked >= 40);
}
