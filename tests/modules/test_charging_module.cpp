// The charging module without a broker: prices in, a schedule solved and
// sent, the DER held out of dispatch until it ends, answers folded in.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <functional>

#include "tests/modules/module_rig.h"

using derms::testing::GridVder;
using derms::testing::kT0;
using derms::testing::ModuleRig;
using derms::testing::RigOptions;
namespace v1 = derms::v1;
namespace topics = derms::topics;
namespace codec = derms::codec;

namespace {

// A day of hourly prices from `from_ms`: cheap at night (hours 1-4).
std::string Prices(const std::string& node, int64_t from_ms) {
  v1::PriceForecast f;
  f.set_node(node);
  f.set_issued_ms(from_ms);
  for (int h = 0; h < 24; ++h) {
    auto* iv = f.add_intervals();
    iv->set_start_ms(from_ms + h * 3600000LL);
    iv->set_duration_s(3600);
    iv->set_price_per_mwh(h >= 1 && h <= 4 ? 20 : 80);
  }
  return codec::ToJson(f);
}

RigOptions Options() {
  RigOptions o;
  o.vders = {GridVder("north", "sub-1")};
  o.charging.default_node = "NODE-A";
  return o;
}

}  // namespace

TEST_CASE(
    "a schedule is solved at the cheapest hours, sent to the DER, and holds it out of "
    "dispatch until it ends",
    "[unit][modules][charging]") {
  ModuleRig rig(Options());
  rig.Battery("ev-1", "sub-1", 10);
  rig.Send(topics::PriceForecast("NODE-A"), Prices("NODE-A", kT0));
  v1::ScheduleRequest q;
  q.set_request_id("night-1");
  q.set_der_id("ev-1");
  q.set_max_charge_kw(10);
  q.set_energy_kwh(20);
  q.set_earliest_start_ms(kT0);
  q.set_ready_by_ms(kT0 + 12 * 3600000LL);
  rig.Send(topics::ScheduleRequest(), codec::ToJson(q), "reply/me", "c1");

  auto results = rig.outbox.On(topics::ScheduleResult("night-1"));
  REQUIRE(results.size() == 1);
  auto r = rig.outbox.Decode<v1::ScheduleResult>(results[0]);
  CHECK(r.status() == v1::SCHEDULE_SOLVED);
  CHECK(r.energy_kwh() == Approx(20));
  CHECK(r.cost() == Approx(20 * 20 / 1000.0));  // 20 kWh at 20 per MWh
  REQUIRE(rig.outbox.replies.size() == 1);

  auto controls = rig.ControlsTo("ev-1");
  REQUIRE(controls.size() == 1);
  CHECK(controls[0].command_id() == "sch-night-1");
  CHECK(controls[0].priority() == 1);
  const auto* hold = rig.controls->holds().Find("ev-1", rig.time.NowMs());
  REQUIRE(hold != nullptr);
  CHECK(hold->holder == "charging");
  CHECK(hold->reason.find("night-1") != std::string::npos);

  // Dispatch leaves it alone: no active member, no control.
  v1::GridStatus g;
  g.set_frequency_hz(60);
  g.set_voltage_pu(1);
  g.set_load_kw(105);
  g.set_supply_kw(100);
  rig.Send(topics::GridStatus("sub-1"), codec::ToJson(g));
  CHECK(rig.ControlsTo("ev-1").size() == 1);

  rig.Answer("ev-1", "sch-night-1", v1::RECEIVED);
  results = rig.outbox.On(topics::ScheduleResult("night-1"));
  REQUIRE(results.size() == 2);
  CHECK(rig.outbox.Decode<v1::ScheduleResult>(results[1]).status() == v1::SCHEDULE_DELIVERED);
}

TEST_CASE("a DER that rejects its schedule is released back to dispatch",
          "[unit][modules][charging]") {
  ModuleRig rig(Options());
  rig.Battery("ev-1", "sub-1", 10);
  rig.Send(topics::PriceForecast("NODE-A"), Prices("NODE-A", kT0));
  v1::ScheduleRequest q;
  q.set_request_id("night-2");
  q.set_der_id("ev-1");
  q.set_max_charge_kw(10);
  q.set_energy_kwh(10);
  q.set_earliest_start_ms(kT0);
  q.set_ready_by_ms(kT0 + 6 * 3600000LL);
  rig.Send(topics::ScheduleRequest(), codec::ToJson(q));
  REQUIRE(rig.controls->holds().Held("ev-1", rig.time.NowMs()));
  rig.Answer("ev-1", "sch-night-2", v1::REJECTED);
  CHECK_FALSE(rig.controls->holds().Held("ev-1", rig.time.NowMs()));
  auto results = rig.outbox.On(topics::ScheduleResult("night-2"));
  REQUIRE(results.size() == 2);
  auto r = rig.outbox.Decode<v1::ScheduleResult>(results[1]);
  CHECK(r.status() == v1::SCHEDULE_FAILED);
  CHECK(r.reason().find("rejected the schedule") != std::string::npos);
}

TEST_CASE("a result fetched again by id is read off the processing thread and answered",
          "[unit][modules][charging]") {
  ModuleRig rig(Options());
  v1::ScheduleResult stored;
  stored.set_request_id("old-1");
  stored.set_status(v1::SCHEDULE_DELIVERED);
  rig.archive.push_back(stored);
  rig.Send(topics::ScheduleRequest(), "{\"request_id\": \"old-1\"}", "reply/me", "c");
  rig.Send(topics::ScheduleRequest(), "{\"request_id\": \"never\"}", "reply/me", "d");
  CHECK(rig.outbox.replies.empty());  // answered when the read completes
  rig.Tick();
  REQUIRE(rig.outbox.replies.size() == 2);
  CHECK(rig.outbox.Decode<v1::ScheduleResult>(rig.outbox.replies[0]).status() ==
        v1::SCHEDULE_DELIVERED);
  auto missing = rig.outbox.Decode<v1::ScheduleResult>(rig.outbox.replies[1]);
  CHECK(missing.status() == v1::SCHEDULE_FAILED);
  CHECK(missing.reason() == "no schedule request 'never' is known");
}

TEST_CASE("a request for a node without prices fails with the reason",
          "[unit][modules][charging]") {
  ModuleRig rig(Options());
  v1::ScheduleRequest q;
  q.set_request_id("x-1");
  q.set_node("NODE-Z");
  q.set_max_charge_kw(5);
  q.set_energy_kwh(5);
  q.set_earliest_start_ms(kT0);
  q.set_ready_by_ms(kT0 + 3600000LL * 4);
  rig.Send(topics::ScheduleRequest(), codec::ToJson(q));
  auto results = rig.outbox.On(topics::ScheduleResult("x-1"));
  REQUIRE(results.size() == 1);
  auto r = rig.outbox.Decode<v1::ScheduleResult>(results[0]);
  CHECK(r.status() == v1::SCHEDULE_FAILED);
  CHECK(r.reason().find("NODE-Z") != std::string::npos);
  CHECK(rig.Metric("messages_rejected") == 1);
}

TEST_CASE("every number of a schedule request is bounded, and the refusal names the field, the "
          "value and the rule",
          "[unit][modules][charging]") {
  ModuleRig rig(Options());
  rig.Send(topics::PriceForecast("NODE-A"), Prices("NODE-A", kT0));
  auto base = [] {
    v1::ScheduleRequest q;
    q.set_node("NODE-A");
    q.set_max_charge_kw(10);
    q.set_energy_kwh(20);
    q.set_earliest_start_ms(kT0);
    q.set_ready_by_ms(kT0 + 12 * 3600000LL);
    return q;
  };
  struct Case {
    const char* name;
    std::function<void(v1::ScheduleRequest&)> spoil;
    const char* expect;
  };
  const Case cases[] = {
      {"huge power", [](auto& q) { q.set_max_charge_kw(1e300); }, "max_charge_kw 1e+300 outside"},
      {"huge energy", [](auto& q) { q.set_energy_kwh(1e300); }, "energy_kwh 1e+300 outside"},
      {"huge capacity", [](auto& q) { q.set_capacity_kwh(1e300); }, "capacity_kwh 1e+300 outside"},
      {"tiny efficiency", [](auto& q) { q.set_efficiency(1e-300); }, "efficiency 1e-300 outside"},
      {"huge undelivered price", [](auto& q) { q.set_undelivered_price_per_mwh(1e300); },
       "undelivered_price_per_mwh 1e+300 outside"},
      {"window over", [](auto& q) { q.set_ready_by_ms(kT0 - 1000); }, "ready_by_ms"},
      {"limit without devices", [](auto& q) { q.set_import_limit_kw(50); },
       "import_limit_kw 50 is only for a request with devices"},
      {"huge import limit",
       [](auto& q) {
         v1::ScheduleRequest device = q;
         *q.add_devices() = device;
         q.set_import_limit_kw(1e300);
       },
       "import_limit_kw 1e+300 outside"},
  };
  int n = 0;
  for (const Case& c : cases) {
    INFO(c.name);
    v1::ScheduleRequest q = base();
    q.set_request_id(fmt::format("bad-{}", ++n));
    c.spoil(q);
    rig.Send(topics::ScheduleRequest(), codec::ToJson(q));
    auto results = rig.outbox.On(topics::ScheduleResult(q.request_id()));
    REQUIRE(results.size() == 1);
    auto r = rig.outbox.Decode<v1::ScheduleResult>(results[0]);
    CHECK(r.status() == v1::SCHEDULE_FAILED);
    CHECK_THAT(r.reason(), Catch::Contains(c.expect));
  }
}

TEST_CASE("an empty schedule request is answered on its response topic",
          "[unit][modules][charging]") {
  ModuleRig rig(Options());
  rig.Send(topics::ScheduleRequest(), "", "reply/me", "c1");
  REQUIRE(rig.outbox.replies.size() == 1);
  CHECK(rig.outbox.replies[0].correlation_data == "c1");
  auto r = rig.outbox.Decode<v1::ScheduleResult>(rig.outbox.replies[0]);
  CHECK(r.status() == v1::SCHEDULE_FAILED);
  CHECK_THAT(r.reason(), Catch::Contains("empty payload"));
}

TEST_CASE("a schedule result people read is rounded, the numbers kept",
          "[unit][modules][charging]") {
  ModuleRig rig(Options());
  rig.Send(topics::PriceForecast("NODE-A"), Prices("NODE-A", kT0));
  v1::ScheduleRequest q;
  q.set_request_id("thirds");
  q.set_node("NODE-A");
  q.set_max_charge_kw(10.0 / 3);
  q.set_energy_kwh(10.0 / 3);
  q.set_earliest_start_ms(kT0);
  q.set_ready_by_ms(kT0 + 12 * 3600000LL);
  rig.Send(topics::ScheduleRequest(), codec::ToJson(q));
  auto results = rig.outbox.On(topics::ScheduleResult("thirds"));
  REQUIRE(results.size() == 1);
  CHECK_THAT(results[0].payload, Catch::Contains("\"energy_kwh\":3.333,"));
  CHECK_THAT(results[0].payload, !Catch::Contains("3.3333"));
}
