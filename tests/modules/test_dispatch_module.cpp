// The dispatch module without a broker: grid statuses and utility requests
// in, setpoints out, answers in, runs recorded; deadlines stepped with the
// clock.
#include <catch2/catch.hpp>
#include <algorithm>

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

namespace {

// north (bound to sub-1's grid) claims what its child north-storage does not:
// bat-1 and bat-2 are north-storage's, bat-3 is north's own.
RigOptions StorageUnderNorth() {
  RigOptions o;
  derms::vder::VderDefinition north = GridVder("north", "sub-1");
  north.children = {"north-storage"};
  derms::vder::VderDefinition storage;
  storage.id = storage.name = "north-storage";
  storage.members.der_ids = {"bat-1", "bat-2"};
  o.vders = {north, storage};
  o.dispatch.response_timeout_ms = 2000;
  return o;
}

std::string Dispatch(const std::string& request_id, double target_kw, uint32_t duration_s) {
  v1::DispatchRequest req;
  req.set_request_id(request_id);
  req.set_target_kw(target_kw);
  req.set_duration_s(duration_s);
  return codec::ToJson(req);
}

std::vector<v1::DispatchResult> RepliesTo(const ModuleRig& rig, const std::string& topic) {
  std::vector<v1::DispatchResult> out;
  for (const auto& p : rig.outbox.replies) {
    if (p.topic == topic) out.push_back(rig.outbox.Decode<v1::DispatchResult>(p));
  }
  return out;
}

}  // namespace

TEST_CASE("a utility's dispatch window outranks grid runs over its DERs, and its answer is its "
          "own run's",
          "[unit][modules][dispatch]") {
  ModuleRig rig(StorageUnderNorth());
  rig.Battery("bat-1", "sub-1", 10);
  rig.Battery("bat-2", "sub-1", 10);
  rig.Battery("bat-3", "sub-1", 10);
  rig.Send(topics::VderDispatch("north-storage"), Dispatch("r-1", 5, 600), "u/1", "c-1");
  auto c1 = rig.ControlsTo("bat-1");
  auto c2 = rig.ControlsTo("bat-2");
  REQUIRE(c1.size() == 1);
  REQUIRE(c2.size() == 1);

  // The grid's automatic balancing every two seconds, before and after the
  // answers: it neither supersedes the utility's run nor touches its DERs.
  rig.Send(topics::GridStatus("sub-1"), Grid(112, 100));
  CHECK(rig.dispatch->active_runs() == 2);
  rig.Answer("bat-1", c1[0].command_id(), v1::APPLIED);
  rig.Answer("bat-2", c2[0].command_id(), v1::APPLIED);
  for (int i = 0; i < 3; ++i) {
    rig.Advance(2000);
    rig.Send(topics::GridStatus("sub-1"), Grid(112, 100));
  }
  CHECK(rig.ControlsTo("bat-1").size() == 1);
  CHECK(rig.ControlsTo("bat-2").size() == 1);
  CHECK(rig.CommandsTo("bat-1").empty());
  CHECK(rig.CommandsTo("bat-2").empty());
  // The rest covers the imbalance less what the held DERs put out.
  auto c3 = rig.ControlsTo("bat-3");
  REQUIRE_FALSE(c3.empty());
  CHECK(c3.back().intervals(0).target_kw() == Approx(7.0));

  auto answers = RepliesTo(rig, "u/1");
  REQUIRE(answers.size() == 1);
  const v1::DispatchResult done = answers[0];
  CHECK(done.outcome() == v1::DISPATCH_COMPLETED);
  CHECK(done.allocated_kw() == Approx(5.0));
  CHECK(done.shortfall_kw() == Approx(0.0).margin(1e-9));
  CHECK(done.members_active() == 2);
  CHECK(done.members_dispatched() == 2);
  CHECK(done.run_id() > 0);
  CHECK(done.window_end_ms() - done.window_start_ms() == 600000);

  // A later utility request over the same DERs takes the window over, and
  // the first requester is told, on the result topic and its response topic.
  rig.Send(topics::VderDispatch("north-storage"), Dispatch("r-2", 8, 600), "u/2", "c-2");
  answers = RepliesTo(rig, "u/1");
  REQUIRE(answers.size() == 2);
  CHECK(answers[1].outcome() == v1::DISPATCH_SUPERSEDED);
  CHECK(answers[1].request_id() == "r-1");
  CHECK(answers[1].superseded_by_request_id() == "r-2");
  CHECK(answers[1].superseded_by_run_id() > done.run_id());
  CHECK(rig.outbox.replies.back().correlation_data == "c-1");
  auto published = rig.outbox.On(topics::VderDispatchResult("north-storage"));
  REQUIRE(published.size() == 2);
  CHECK(rig.outbox.Decode<v1::DispatchResult>(published[1]).outcome() ==
        v1::DISPATCH_SUPERSEDED);
  CHECK(rig.dispatch->windows() == 1);
}

TEST_CASE("a dispatch superseded before its answers says so, with its own run's figures",
          "[unit][modules][dispatch]") {
  ModuleRig rig(StorageUnderNorth());
  rig.Battery("bat-1", "sub-1", 10);
  rig.Battery("bat-2", "sub-1", 10);
  rig.Send(topics::VderDispatch("north-storage"), Dispatch("r-1", 5, 600), "u/1", "c-1");
  rig.Send(topics::VderDispatch("north"), Dispatch("r-2", 8, 600), "u/2", "c-2");
  auto answers = RepliesTo(rig, "u/1");
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].outcome() == v1::DISPATCH_SUPERSEDED);
  CHECK(answers[0].superseded_by_request_id() == "r-2");
  CHECK(answers[0].allocated_kw() == Approx(0.0).margin(1e-9));  // nothing answered yet
  CHECK(answers[0].reason().find("2 members not yet answered") != std::string::npos);
}

TEST_CASE("a dispatch beyond what its members can hold is partially achieved, and says why",
          "[unit][modules][dispatch]") {
  ModuleRig rig(StorageUnderNorth());
  rig.Battery("bat-1", "sub-1", 10);
  rig.Battery("bat-2", "sub-1", 10);
  rig.Send(topics::VderDispatch("north-storage"), Dispatch("r-1", 50, 60), "u/1", "c-1");
  for (const char* der : {"bat-1", "bat-2"}) {
    auto c = rig.ControlsTo(der);
    REQUIRE(c.size() == 1);
    rig.Answer(der, c[0].command_id(), v1::APPLIED);
  }
  auto answers = RepliesTo(rig, "u/1");
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].outcome() == v1::DISPATCH_PARTIAL);
  CHECK(answers[0].command_kw() == Approx(20.0));
  CHECK(answers[0].allocated_kw() == Approx(20.0));
  CHECK(answers[0].shortfall_kw() == Approx(30.0));
  CHECK(answers[0].reason().find("can hold") != std::string::npos);
}

TEST_CASE("a dispatch request refused before it is read is still answered on its response "
          "topic",
          "[unit][modules][dispatch]") {
  ModuleRig rig(StorageUnderNorth());
  rig.Send(topics::VderDispatch("north"), "", "u/1", "c-1");
  auto empty = RepliesTo(rig, "u/1");
  REQUIRE(empty.size() == 1);
  CHECK(empty[0].outcome() == v1::DISPATCH_REFUSED);
  CHECK(empty[0].vder_id() == "north");
  CHECK(empty[0].reason().find("empty payload") != std::string::npos);

  // A virtual DER's path where its id belongs.
  rig.Send("derms/v1/vder/north/north-storage/dispatch", Dispatch("r-9", 5, 60), "u/2", "c-2");
  auto path = RepliesTo(rig, "u/2");
  REQUIRE(path.size() == 1);
  CHECK(path[0].outcome() == v1::DISPATCH_REFUSED);
  CHECK(path[0].request_id() == "r-9");
  CHECK(path[0].reason().find("'north/north-storage' is not one topic level") !=
        std::string::npos);
  CHECK(rig.ControlsTo("bat-1").empty());
  CHECK(rig.Metric("messages_rejected") == 2);
}

TEST_CASE("the router subscribes to a virtual DER's path sent where its id belongs",
          "[unit][modules][dispatch]") {
  ModuleRig rig(StorageUnderNorth());
  auto filters = rig.router.Filters();
  CHECK(std::find(filters.begin(), filters.end(), "derms/v1/vder/+/+/dispatch") != filters.end());
  CHECK(std::find(filters.begin(), filters.end(), "derms/v1/vder/+/dispatch") != filters.end());
}
