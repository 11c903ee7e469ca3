// The OpenDSS parser: the IEEE 123-bus model as its README describes it, and
// errors that name the file, the line and the property.
#include <catch2/catch.hpp>
#include <string>

#include "feeder/dss_parser.h"
#include "tests/feeder/feeder_data.h"

namespace {

using derms::feeder::BranchKind;
using derms::feeder::Connection;
using derms::feeder::ParseDssText;

TEST_CASE("the IEEE 123-bus model parses into one radial tree of 130 buses", "[dss_parser]") {
  auto model = derms::feeder::testing::LoadIeee123();
  REQUIRE(model.ok());
  CHECK(model->buses.size() == 130);  // 132 in the files minus the two *_OPEN dummies
  CHECK(model->branches.size() == 129);
  CHECK(model->buses[0].name == "150");
  CHECK(model->FindBus("300_open") == -1);
  CHECK(model->FindBus("610") >= 0);
  CHECK(model->buses[model->FindBus("610")].base_kv_ll == Approx(0.48));
  double kw = 0, kvar = 0, delta_kw = 0;
  for (const auto& l : model->loads) {
    kw += l.kw;
    kvar += l.kvar;
    if (l.connection == Connection::kDelta) delta_kw += l.kw;
  }
  CHECK(kw == Approx(3490));
  CHECK(kvar == Approx(1920));
  CHECK(delta_kw == Approx(180 + 105 + 140));
  double cap = 0;
  for (const auto& c : model->capacitors) cap += c.kvar;
  CHECK(cap == Approx(750));
  int regulators = 0;
  for (const auto& b : model->branches) regulators += b.kind == BranchKind::kRegulator;
  CHECK(regulators == 4);  // 150-150r ganged, 9-9r, 25-25r, 160-160r banks
  CHECK(model->Taps().size() == 7);
}

TEST_CASE("parser errors name the file, the line and the property", "[dss_parser]") {
  SECTION("a number that is not") {
    auto m = ParseDssText(
        "New object=circuit.t basekv=4.16 bus1=a\n"
        "New Line.l1 bus1=a bus2=b r1=1 x1=1\n"
        "! comment\n"
        "New Load.x bus1=b.1 phases=1 kv=2.4 kw=ten\n",
        "f.dss");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().message() == "f.dss:4: load.x: kw 'ten': not a number");
  }
  SECTION("a continuation line is blamed for its own property") {
    auto m = ParseDssText(
        "New object=circuit.t basekv=4.16 bus1=a\n"
        "New linecode.c nphases=2 units=kft\n"
        "~ rmatrix=[1 | 0.1 1] xmatrix=[1 | 0.1]\n"
        "New Line.l1 phases=2 bus1=a.1.2 bus2=b.1.2 linecode=c length=1 units=kft\n",
        "g.dss");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().message() ==
          "g.dss:3: linecode.c: xmatrix '1 | 0.1': row 2 has 1 value(s), "
          "expected 2 or 2");
  }
  SECTION("an unknown linecode") {
    auto m = ParseDssText(
        "New object=circuit.t basekv=4.16 bus1=a\n"
        "New Line.l1 bus1=a bus2=b linecode=nope length=1\n",
        "h.dss");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().message() == "h.dss:2: line.l1: linecode 'nope': no such linecode");
  }
  SECTION("a load model the power flow does not have") {
    auto m = ParseDssText(
        "New object=circuit.t basekv=4.16 bus1=a\n"
        "New Load.x bus1=a.1 phases=1 kv=2.4 kw=1 model=3\n",
        "i.dss");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().message().rfind("i.dss:2: load.x: model '3':", 0) == 0);
  }
  SECTION("a bus not connected to the source") {
    auto m = ParseDssText(
        "New object=circuit.t basekv=4.16 bus1=a\n"
        "New Line.l1 bus1=c bus2=d r1=1 x1=1\n",
        "j.dss");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().message() == "j.dss:2: line.l1: not connected to the source bus 'a'");
  }
  SECTION("a missing redirect target") {
    auto m = ParseDssText("Redirect nothere.dss\n", "/nonexistent/k.dss");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().message().find("k.dss:1: cannot read") == 0);
  }
  SECTION("an unknown command") {
    auto m = ParseDssText("Frobnicate now\n", "l.dss");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().message() == "l.dss:1: command 'frobnicate' is not understood");
  }
}

TEST_CASE("like= inherits and ~ continues; keys are case-insensitive", "[dss_parser]") {
  auto m = ParseDssText(
      "New object=circuit.t basekv=4.16 bus1=a\r\n"
      "New Line.l1 bus1=a bus2=b r1=1 x1=1\r\n"
      "new transformer.r1 phases=1 buses=[b.1 br.1] kvs=[2.4 2.4] kvas=[100 100]\r\n"
      "new transformer.r2 like=r1 buses=[b.2 br.2]\r\n"
      "new regcontrol.c1 transformer=r1 vreg=120\r\n"
      "new regcontrol.c2 like=c1 transformer=r2\r\n"
      "NEW LOAD.x BUS1=br.1.2 Phases=1 Conn=Delta\r\n"
      "~ KV=4.16 KW=10 kVAR=5 Model=2\r\n",
      "m.dss");
  REQUIRE(m.ok());
  CHECK(m->loads.size() == 1);
  CHECK(m->loads[0].connection == Connection::kDelta);
  CHECK(m->loads[0].kvar == 5);
  CHECK(m->Taps().size() == 2);
}

}  // namespace
