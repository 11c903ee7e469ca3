// Every request gets an answer that tells the truth, through a real
// Mosquitto: requests refused before they are read are answered on their
// response topic; a utility's dispatch window is not overridden by the
// grid's automatic runs and its requester is told when a later request takes
// it over; dermsctl prints the refusal's reason and exits non-zero.
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/support/mosquitto_broker.h"
#include "tests/support/stack.h"

using namespace derms;
using namespace derms::testing;

namespace {

template <typename T>
T Decode(const mqtt::Message& m) {
  T out;
  REQUIRE(codec::ParseOperator(m.payload, m.topic, &out).ok());
  return out;
}

v1::DispatchRequest Dispatch(const std::string& request_id, double target_kw,
                             uint32_t duration_s) {
  v1::DispatchRequest r;
  r.set_request_id(request_id);
  r.set_target_kw(target_kw);
  r.set_duration_s(duration_s);
  return r;
}

struct Run {
  int exit_code = -1;
  std::string out;
};

// Runs dermsctl with `args`, stdout and stderr together.
Run Dermsctl(const std::string& broker_uri, const std::string& args, const TempDir& dir) {
  std::string out_path = dir / "dermsctl.out";
  std::string command = fmt::format("{} --broker {} {} > {} 2>&1", DERMS_DERMSCTL_BIN, broker_uri,
                                    args, out_path);
  int status = std::system(command.c_str());
  Run r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(out_path);
  std::stringstream text;
  text << in.rdbuf();
  r.out = text.str();
  return r;
}

}  // namespace

TEST_CASE("a request refused before it is read is answered on its response topic",
          "[integration][answers]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  TestClient utility((*broker)->uri(), {"replies/#"});

  REQUIRE(utility.Publish(topics::VderDispatch("sub-x"), "", false, "replies/empty", "c-1").ok());
  auto empty = utility.Next("replies/empty");
  REQUIRE(empty);
  CHECK(empty->correlation_data == "c-1");
  auto refused = Decode<v1::DispatchResult>(*empty);
  CHECK(refused.outcome() == v1::DISPATCH_REFUSED);
  CHECK_THAT(refused.reason(), Catch::Contains("empty payload"));

  // A virtual DER's path where its id belongs.
  REQUIRE(utility
              .Publish("derms/v1/vder/utility/north/dispatch",
                       codec::ToJson(Dispatch("r-path", 5, 600)), false, "replies/path", "c-2")
              .ok());
  auto path = utility.Next("replies/path");
  REQUIRE(path);
  refused = Decode<v1::DispatchResult>(*path);
  CHECK(refused.outcome() == v1::DISPATCH_REFUSED);
  CHECK(refused.request_id() == "r-path");
  CHECK_THAT(refused.reason(), Catch::Contains("'utility/north' is not one topic level"));

  REQUIRE(utility.Publish(topics::ScheduleRequest(), "", false, "replies/schedule", "c-3").ok());
  auto schedule = utility.Next("replies/schedule");
  REQUIRE(schedule);
  auto failed = Decode<v1::ScheduleResult>(*schedule);
  CHECK(failed.status() == v1::SCHEDULE_FAILED);
  CHECK_THAT(failed.reason(), Catch::Contains("empty payload"));
}

TEST_CASE("dermsctl prints a refusal's reason and exits non-zero",
          "[integration][answers]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));

  Run dispatch =
      Dermsctl((*broker)->uri(), "dispatch --vder nowhere --target-kw 5 --duration-s 60", dir);
  CHECK(dispatch.exit_code == 1);
  CHECK_THAT(dispatch.out, Catch::Contains("DISPATCH_REFUSED"));
  CHECK_THAT(dispatch.out, Catch::Contains("unknown virtual DER 'nowhere'"));
  CHECK_THAT(dispatch.out, !Catch::Contains("no answer"));

  Run get = Dermsctl((*broker)->uri(), "schedule get no-such-id", dir);
  CHECK(get.exit_code == 1);
  CHECK_THAT(get.out, Catch::Contains("no schedule request 'no-such-id' is known"));
}

TEST_CASE("a utility's dispatch window outlasts the grid's automatic runs, and its requester is "
          "told when a later request takes it over",
          "[integration][answers]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  std::vector<std::unique_ptr<edge::EdgeAgent>> agents;
  for (const char* id : {"w-1", "w-2"}) {
    agents.push_back(
        MakeAgent(AgentOptionsFor((*broker)->uri(), id, v1::BATTERY, "sub-w", dir / "state")));
  }
  AgentsThread fleet(std::move(agents));
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(agg->db_path(), "SELECT COUNT(DISTINCT der_id) FROM telemetry") == 2;
  }));

  TestClient utility((*broker)->uri(), {"replies/#"});
  TestClient grid((*broker)->uri());
  REQUIRE(utility
              .Publish(topics::VderDispatch("sub-w"), codec::ToJson(Dispatch("r-1", 6, 600)),
                       false, "replies/r-1", "c-1")
              .ok());
  // The grid's status every 200 ms while the utility's run waits and after.
  std::optional<mqtt::Message> first;
  for (int i = 0; i < 15 && !first; ++i) {
    REQUIRE(grid.Publish(topics::GridStatus("sub-w"), codec::ToJson(GridStatusOf("sub-w", 1020, 1000))).ok());
    first = utility.Next("replies/r-1", {}, std::chrono::milliseconds(200));
  }
  if (!first) first = utility.Next("replies/r-1");
  REQUIRE(first);
  auto done = Decode<v1::DispatchResult>(*first);
  CHECK(done.outcome() == v1::DISPATCH_COMPLETED);
  CHECK(done.allocated_kw() == Approx(6.0));
  CHECK(done.members_active() == 2);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(grid.Publish(topics::GridStatus("sub-w"), codec::ToJson(GridStatusOf("sub-w", 1020, 1000))).ok());
  }
  REQUIRE(agg->FlushStore().ok());
  // Each battery was sent the utility's setpoint and nothing since.
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(agg->db_path(), "SELECT COUNT(*) FROM dispatch_runs WHERE "
                                    "trigger='grid_status'") >= 5;
  }));
  CHECK(QueryInt(agg->db_path(), "SELECT COUNT(*) FROM controls WHERE der_id IN ('w-1','w-2')") ==
        2);

  REQUIRE(utility
              .Publish(topics::VderDispatch("sub-w"), codec::ToJson(Dispatch("r-2", -4, 600)),
                       false, "replies/r-2", "c-2")
              .ok());
  auto told = utility.Next("replies/r-1");
  REQUIRE(told);
  CHECK(told->correlation_data == "c-1");
  auto superseded = Decode<v1::DispatchResult>(*told);
  CHECK(superseded.outcome() == v1::DISPATCH_SUPERSEDED);
  CHECK(superseded.superseded_by_request_id() == "r-2");
  auto second = utility.Next("replies/r-2");
  REQUIRE(second);
  CHECK(Decode<v1::DispatchResult>(*second).outcome() == v1::DISPATCH_COMPLETED);
}
