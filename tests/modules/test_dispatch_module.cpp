// The dispatch module without a broker: grid statuses and utility requests
// in, setpoints out, answers in, runs recorded; deadlines stepped with the
// clock.
#include <catch2/catch.hpp>

#include "tests/modules/module_rig.h"

using derms::testing::GridVder;
using derms::testing::ModuleRig;
using derms::testing::RigOptions;
namespace v1 = derms::v1;
namespace topics = derms::topics;
namespace codec = derms::codec;

namespace {

RigOptions TwoBatteriesAtSub1() {
  RigOptions o;
  o.vders = {GridVder("north", "sub-1")};
  o.dispatch.response_timeout_ms = 2000;
  return o;
}

std::string Grid(double load_kw, double supply_kw) {
  v1::GridStatus g;
  g.set_frequency_hz(60);
  g.set_voltage_pu(1);
  g.set_load_kw(load_kw);
  g.set_supply_kw(supply_kw);
  return codec::ToJson(g);
}

}  // namespace

TEST_CASE("a grid imbalance is shared by the active batteries and the run is recorded",
          "[unit][modules][dispatch]") {
  ModuleRig rig(TwoBatteriesAtSub1());
  rig.Battery("bat-1", "sub-1", 10);
  rig.Battery("bat-2", "sub-1", 10);
  rig.Send(topics::GridStatus("sub-1"), Grid(112, 100));  // 12 kW short

  auto c1 = rig.ControlsTo("bat-1");
  auto c2 = rig.ControlsTo("bat-2");
  REQUIRE(c1.size() == 1);
  REQUIRE(c2.size() == 1);
  CHECK(c1[0].intervals(0).target_kw() + c2[0].intervals(0).target_kw() == Approx(12.0));
  CHECK(rig.dispatch->active_runs() == 1);

  rig.Answer("bat-1", c1[0].command_id(), v1::APPLIED);
  CHECK(rig.dispatch->active_runs() == 1);  // still waiting for bat-2
  rig.Answer("bat-2", c2[0].command_id(), v1::APPLIED);
  CHECK(rig.dispatch->active_runs() == 0);

  auto runs = rig.sink.All<derms::storage::DispatchRunRecord>();
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].outcome == "completed");
  CHECK(runs[0].achieved_kw == Approx(12.0));
  CHECK(runs[0].applied == 2);
  CHECK(runs[0].allocations.size() == 2);
  CHECK(rig.Metric("dispatch_runs") == 1);
  CHECK(rig.Metric("controls_sent") == 2);
  CHECK(rig.controls->ledger().InForceFor("bat-1", rig.time.NowMs()) != nullptr);
}

TEST_CASE(
    "a silent member is told to return to default when its deadline passes, and the "
    "shortfall moves to the others",
    "[unit][modules][dispatch]") {
  ModuleRig rig(TwoBatteriesAtSub1());
  rig.Battery("bat-1", "sub-1", 10);
  rig.Battery("bat-2", "sub-1", 10);
  rig.Send(topics::GridStatus("sub-1"), Grid(108, 100));
  auto c1 = rig.ControlsTo("bat-1");
  auto c2 = rig.ControlsTo("bat-2");
  REQUIRE(c1.size() == 1);
  REQUIRE(c2.size() == 1);
  rig.Answer("bat-1", c1[0].command_id(), v1::APPLIED);

  rig.Advance(1900);  // not yet
  CHECK(rig.CommandsTo("bat-2").empty());
  rig.Advance(200);  // past response_timeout_ms on the monotonic clock
  auto cmds = rig.CommandsTo("bat-2");
  REQUIRE(cmds.size() == 1);
  CHECK(cmds[0].command() == v1::RETURN_TO_DEFAULT);
  // The second round asks bat-1 for all 8 kW.
  c1 = rig.ControlsTo("bat-1");
  REQUIRE(c1.size() == 2);
  CHECK(c1[1].intervals(0).target_kw() == Approx(8.0));
  rig.Answer("bat-1", c1[1].command_id(), v1::APPLIED);
  auto runs = rig.sink.All<derms::storage::DispatchRunRecord>();
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].no_answer == 1);
  CHECK(runs[0].achieved_kw == Approx(8.0));
  CHECK(rig.controls->ledger().InForceFor("bat-2", rig.time.NowMs()) == nullptr);
}

TEST_CASE("a DER under an availability hold is left out of dispatch", "[unit][modules][dispatch]") {
  ModuleRig rig(TwoBatteriesAtSub1());
  rig.Battery("bat-1", "sub-1", 10);
  rig.Battery("bat-2", "sub-1", 10);
  rig.controls->holds().Place(
      "bat-2", derms::controls::Hold{"maintenance", rig.time.NowMs() + 60000, "test"});
  rig.Send(topics::GridStatus("sub-1"), Grid(106, 100));
  CHECK(rig.ControlsTo("bat-2").empty());
  auto c1 = rig.ControlsTo("bat-1");
  REQUIRE(c1.size() == 1);
  CHECK(c1[0].intervals(0).target_kw() == Approx(6.0));
}

TEST_CASE(
    "a newer run supersedes an older one over the same DERs, and unneeded setpoints are "
    "released",
    "[unit][modules][dispatch]") {
  ModuleRig rig(TwoBatteriesAtSub1());
  rig.Battery("bat-1", "sub-1", 10);
  rig.Battery("bat-2", "sub-1", 10);
  rig.Send(topics::GridStatus("sub-1"), Grid(110, 100));
  auto c2 = rig.ControlsTo("bat-2");
  REQUIRE(c2.size() == 1);
  rig.Answer("bat-2", c2[0].command_id(), v1::APPLIED);
  // Balanced now: the run in progress is superseded and no one is needed.
  rig.Send(topics::GridStatus("sub-1"), Grid(100, 100));
  auto runs = rig.sink.All<derms::storage::DispatchRunRecord>();
  REQUIRE(runs.size() >= 1);
  CHECK(runs[0].outcome == "superseded");
  auto cmds = rig.CommandsTo("bat-2");
  REQUIRE(cmds.size() == 1);
  CHECK(cmds[0].command() == v1::RETURN_TO_DEFAULT);
  CHECK(rig.controls->ledger().InForceFor("bat-2", rig.time.NowMs()) == nullptr);
}

TEST_CASE("a utility's dispatch request is answered on its response topic, refusals too",
          "[unit][modules][dispatch]") {
  ModuleRig rig(TwoBatteriesAtSub1());
  rig.Battery("bat-1", "sub-1", 10);
  v1::DispatchRequest req;
  req.set_request_id("u-1");
  req.set_target_kw(4);
  req.set_duration_s(600);
  rig.Send(topics::VderDispatch("north"), codec::ToJson(req), "reply/here", "corr-1");
  auto c1 = rig.ControlsTo("bat-1");
  REQUIRE(c1.size() == 1);
  CHECK(c1[0].intervals(0).duration_s() == 600);
  rig.Answer("bat-1", c1[0].command_id(), v1::APPLIED);
  REQUIRE(rig.outbox.replies.size() == 1);
  CHECK(rig.outbox.replies[0].topic == "reply/here");
  CHECK(rig.outbox.replies[0].correlation_data == "corr-1");
  auto result = rig.outbox.Decode<v1::DispatchResult>(rig.outbox.replies[0]);
  CHECK(result.allocated_kw() == Approx(4.0));
  CHECK(rig.outbox.On(topics::VderDispatchResult("north")).size() == 1);

  req.set_request_id("u-2");
  rig.Send(topics::VderDispatch("nowhere"), codec::ToJson(req), "reply/here", "corr-2");
  REQUIRE(rig.outbox.replies.size() == 2);
  auto refused = rig.outbox.Decode<v1::DispatchResult>(rig.outbox.replies[1]);
  CHECK(refused.reason().find("unknown virtual DER 'nowhere'") != std::string::npos);
  CHECK(refused.shortfall_kw() == 4);
}

TEST_CASE("a refused dispatch request names the field and is counted by reason",
          "[unit][modules][dispatch]") {
  ModuleRig rig(TwoBatteriesAtSub1());
  rig.Send(topics::VderDispatch("north"), "{\"target_kw\": \"lots\"}", "reply/here", "c");
  CHECK(rig.Metric("messages_rejected") == 1);
  REQUIRE(rig.outbox.replies.size() == 1);
  auto refused = rig.outbox.Decode<v1::DispatchResult>(rig.outbox.replies[0]);
  CHECK_FALSE(refused.reason().empty());
}
