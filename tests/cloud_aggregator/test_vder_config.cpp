// Reading the virtual DER tree and merit-order costs from the aggregator's
// TOML: what a full configuration yields, errors that name the file, the
// virtual DER and the key, and which cost a DER gets.
#include <toml++/toml.h>

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cloud_aggregator/dispatch/der_capability.h"
#include "cloud_aggregator/vder/vder_config.h"
#include "cloud_aggregator/vder/vder_tree.h"

using Catch::Matchers::Contains;
using derms::vder::ReadVderConfig;
using derms::vder::VderConfig;
using derms::dispatch::CostTable;
using derms::dispatch::Policy;

namespace {

constexpr const char* kSource = "aggregator.toml";

VderConfig ReadOk(std::string_view text) {
  toml::table t = toml::parse(text);
  auto config = ReadVderConfig(t, kSource);
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  return std::move(config).value();
}

// The message of a rejected configuration; fails the test if it was accepted.
std::string ReadError(std::string_view text) {
  toml::table t = toml::parse(text);
  auto config = ReadVderConfig(t, kSource);
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == "config_error");
  CHECK_THAT(config.status().message(), Contains(kSource));
  return config.status().message();
}

derms::v1::DerBirth Birth(const std::string& der_id, derms::v1::DerType type,
                          const std::string& provider) {
  derms::v1::DerBirth b;
  b.set_der_id(der_id);
  b.set_der_type(type);
  b.set_provider_id(provider);
  return b;
}

}  // namespace

TEST_CASE("a full virtual DER configuration is read field by field", "[unit][vder_config]") {
  VderConfig c = ReadOk(R"(
    [[vder]]
    id = "utility"
    children = ["north"]

    [[vder]]
    id = "north"
    name = "North feeders"
    policy = "merit_order"
    children = ["north-storage"]
    substations = ["sub-1"]
    grid_substation = "sub-1"

    [[vder]]
    id = "north-storage"
    policy = "soc_balance"
    der_types = ["BATTERY", "EV_CHARGER"]
    substations = ["sub-1"]
    feeders = ["f-1", "f-2"]
    providers = ["prov-a"]
    tags = ["fast"]
    der_ids = ["bat-7"]

    [[vder]]
    id = "prov-a"
    policy = "fair_share"
    dispatchable = false
    providers = ["prov-a"]

    [costs]
    default = 0.1
    type = { BATTERY = 0.02, PV = 1 }
    provider = { prov-a = 0.05 }
    der = { bat-7 = 0.5 }
  )");
  REQUIRE(c.vders.size() == 4);
  const auto& utility = c.vders[0];
  CHECK(utility.id == "utility");
  CHECK(utility.name.empty());  // VderTree::Build defaults it to the id
  CHECK(utility.policy == Policy::kProRata);
  CHECK(utility.dispatchable);
  CHECK(utility.children == std::vector<std::string>{"north"});
  CHECK_FALSE(utility.members.HasFilter());

  const auto& north = c.vders[1];
  CHECK(north.name == "North feeders");
  CHECK(north.policy == Policy::kMeritOrder);
  CHECK(north.grid_substation == "sub-1");
  CHECK(north.members.substations == std::vector<std::string>{"sub-1"});

  const auto& storage = c.vders[2];
  CHECK(storage.policy == Policy::kSocBalance);
  CHECK(storage.members.der_types ==
        std::vector<derms::v1::DerType>{derms::v1::BATTERY, derms::v1::EV_CHARGER});
  CHECK(storage.members.feeders == std::vector<std::string>{"f-1", "f-2"});
  CHECK(storage.members.providers == std::vector<std::string>{"prov-a"});
  CHECK(storage.members.tags == std::vector<std::string>{"fast"});
  CHECK(storage.members.der_ids == std::vector<std::string>{"bat-7"});
  CHECK_FALSE(storage.implicit);

  const auto& view = c.vders[3];
  CHECK_FALSE(view.dispatchable);
  CHECK(view.policy == Policy::kFairShare);

  CHECK(c.costs.default_cost == 0.1);
  CHECK(c.costs.by_type.size() == 2);
  CHECK(c.costs.by_type.at("BATTERY") == 0.02);
  CHECK(c.costs.by_type.at("PV") == 1.0);  // an integer is a number too
  CHECK(c.costs.by_provider.at("prov-a") == 0.05);
  CHECK(c.costs.by_der.at("bat-7") == 0.5);

  // And it is a valid tree.
  auto tree = derms::vder::VderTree::Build(c.vders);
  INFO(tree.status().ToString());
  CHECK(tree.ok());
}

TEST_CASE("a configuration without virtual DERs or costs reads as empty", "[unit][vder_config]") {
  VderConfig c = ReadOk("broker = \"tcp://localhost:1883\"\n");
  CHECK(c.vders.empty());
  CHECK(c.costs.default_cost == 0);
  CHECK(c.costs.by_der.empty());
  CHECK(c.costs.by_provider.empty());
  CHECK(c.costs.by_type.empty());
}

TEST_CASE("an unknown key in a virtual DER names the file, the entry and the key",
          "[unit][vder_config]") {
  std::string msg = ReadError(R"(
    [[vder]]
    id = "north"
    [[vder]]
    id = "south"
    polcy = "pro_rata"
  )");
  CHECK_THAT(msg, Contains("vder[1]"));
  CHECK_THAT(msg, Contains("polcy"));

  // Nested tables are not a way round it.
  msg = ReadError(R"(
    [[vder]]
    id = "north"
    members = { der_types = ["BATTERY"] }
  )");
  CHECK_THAT(msg, Contains("vder[0]"));
  CHECK_THAT(msg, Contains("members.der_types"));
}

TEST_CASE("a bad policy names the virtual DER and lists the allowed ones", "[unit][vder_config]") {
  std::string msg = ReadError(R"(
    [[vder]]
    id = "north"
    policy = "fastest_first"
  )");
  CHECK_THAT(msg, Contains("vder[0]"));
  CHECK_THAT(msg, Contains("'north'"));
  CHECK_THAT(msg, Contains("'fastest_first'"));
  CHECK_THAT(msg, Contains("pro_rata, soc_balance, merit_order, fair_share"));
}

TEST_CASE("a der_types entry that is not a DER type is rejected naming it", "[unit][vder_config]") {
  for (const char* bad : {"BATTERIES", "battery", "DER_TYPE_UNSPECIFIED", ""}) {
    INFO("'" << bad << "'");
    std::string text =
        std::string("[[vder]]\nid = \"north\"\nder_types = [\"PV\", \"") + bad + "\"]\n";
    std::string msg = ReadError(text);
    CHECK_THAT(msg, Contains("'north'"));
    CHECK_THAT(msg, Contains(std::string("'") + bad + "'"));
    CHECK_THAT(msg, Contains("der_types"));
  }
  // A string where a list belongs.
  CHECK_THAT(ReadError("[[vder]]\nid = \"north\"\nder_types = \"BATTERY\"\n"),
             Contains("der_types"));
}

TEST_CASE("values of the wrong type and a missing id are rejected naming the key",
          "[unit][vder_config]") {
  CHECK_THAT(ReadError("[[vder]]\nname = \"no id\"\n"), Contains("id is required"));
  CHECK_THAT(ReadError("[[vder]]\nid = \"a\"\ndispatchable = \"no\"\n"), Contains("dispatchable"));
  CHECK_THAT(ReadError("[[vder]]\nid = \"a\"\ndispatchable = 0\n"), Contains("dispatchable"));
  CHECK_THAT(ReadError("[[vder]]\nid = \"a\"\nchildren = \"b\"\n"), Contains("children"));
  CHECK_THAT(ReadError("[[vder]]\nid = \"a\"\ntags = [1, 2]\n"), Contains("tags"));
  CHECK_THAT(ReadError("[[vder]]\nid = 7\n"), Contains("id"));
  CHECK_THAT(ReadError("vder = 3\n"), Contains("[[vder]]"));
  CHECK_THAT(ReadError("vder = [1, 2]\n"), Contains("vder[0]"));
}

TEST_CASE("costs are read per type, provider and DER", "[unit][vder_config]") {
  VderConfig c = ReadOk(R"(
    [costs]
    default = 1
    type = { EV_CHARGER = 0.05, FLEXIBLE_LOAD = 0.08 }
    provider = { prov-a = 0.2, prov-b = -0.1 }
    der = { bat-7 = 3.5 }
  )");
  CHECK(c.costs.default_cost == 1.0);
  CHECK(c.costs.by_type.size() == 2);
  CHECK(c.costs.by_type.at("EV_CHARGER") == 0.05);
  CHECK(c.costs.by_type.at("FLEXIBLE_LOAD") == 0.08);
  CHECK(c.costs.by_provider.size() == 2);
  CHECK(c.costs.by_provider.at("prov-b") == -0.1);
  CHECK(c.costs.by_der.size() == 1);
  CHECK(c.costs.by_der.at("bat-7") == 3.5);
}

TEST_CASE("an unknown DER type or a value that is not a finite number in costs is rejected",
          "[unit][vder_config]") {
  std::string msg = ReadError("[costs]\ntype = { BATTERY = 0.1, SOLAR = 0.2 }\n");
  CHECK_THAT(msg, Contains("costs.type.SOLAR"));
  CHECK_THAT(ReadError("[costs]\ntype = { DER_TYPE_UNSPECIFIED = 0.2 }\n"),
             Contains("costs.type.DER_TYPE_UNSPECIFIED"));
  CHECK_THAT(ReadError("[costs]\nder = { bat-7 = \"cheap\" }\n"), Contains("costs.der.bat-7"));
  CHECK_THAT(ReadError("[costs]\nprovider = { prov-a = true }\n"),
             Contains("costs.provider.prov-a"));
  CHECK_THAT(ReadError("[costs]\nprovider = { prov-a = inf }\n"),
             Contains("costs.provider.prov-a"));
  CHECK_THAT(ReadError("[costs]\ndefault = nan\n"), Contains("costs.default"));
  CHECK_THAT(ReadError("[costs]\ndefault = \"free\"\n"), Contains("default"));
  CHECK_THAT(ReadError("[costs]\ntype = 0.1\n"), Contains("costs.type"));
  CHECK_THAT(ReadError("costs = 0.1\n"), Contains("costs"));
}

TEST_CASE("a misspelt key in costs is reported rather than ignored", "[unit][vder_config]") {
  // The options file accepts anything under costs and leaves the keys to
  // ReadVderConfig: a typo must not silently leave a cost at zero.
  CHECK_THAT(ReadError("[costs]\ndefualt = 0.1\n"), Contains("defualt"));
  CHECK_THAT(ReadError("[costs]\ntypes = { BATTERY = 0.1 }\n"), Contains("types"));
}

TEST_CASE("a DER's cost is its own, else its provider's, else its type's, else the default",
          "[unit][vder_config]") {
  CostTable costs;
  costs.default_cost = 0.1;
  costs.by_type = {{"BATTERY", 0.2}};
  costs.by_provider = {{"prov-a", 0.3}};
  costs.by_der = {{"bat-7", 0.4}};
  const auto bat7 = Birth("bat-7", derms::v1::BATTERY, "prov-a");
  CHECK(costs.CostOf(bat7) == 0.4);
  CHECK(costs.CostOf(Birth("bat-8", derms::v1::BATTERY, "prov-a")) == 0.3);
  CHECK(costs.CostOf(Birth("bat-9", derms::v1::BATTERY, "prov-b")) == 0.2);
  CHECK(costs.CostOf(Birth("pv-1", derms::v1::PV, "prov-b")) == 0.1);
  // A cheaper, less specific entry does not win over a more specific one.
  costs.by_type["BATTERY"] = 0.0;
  costs.by_provider["prov-a"] = 0.0;
  CHECK(costs.CostOf(bat7) == 0.4);
  costs.by_der.clear();
  CHECK(costs.CostOf(bat7) == 0.0);
  costs.by_provider.clear();
  costs.by_type["BATTERY"] = 0.25;
  CHECK(costs.CostOf(bat7) == 0.25);
  costs.by_type.clear();
  CHECK(costs.CostOf(bat7) == 0.1);
}
