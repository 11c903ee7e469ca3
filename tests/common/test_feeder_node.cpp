// Where a DER sits in its feeder's model, as a birth carries it: "bus.phase".
#include <catch2/catch.hpp>

#include "common/feeder_node.h"

TEST_CASE("a feeder node is a bus and a phase 1 to 3, as OpenDSS writes them", "[feeder_node]") {
  auto node = derms::ParseFeederNode("feeder_node", "150r.3");
  REQUIRE(node.ok());
  CHECK(node->bus == "150r");
  CHECK(node->phase == 3);
  CHECK(node->ToString() == "150r.3");

  for (const char* bad : {"48", "48.", ".1", "48.0", "48.4", "48.12", "4 8.1", "48.1.2x"}) {
    INFO(bad);
    auto parsed = derms::ParseFeederNode("feeder_node", bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == "invalid_field");
    CHECK_THAT(parsed.status().message(), Catch::Contains("feeder_node '") &&
                                              Catch::Contains("phase 1, 2 or 3"));
  }
}
