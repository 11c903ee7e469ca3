// The first dispatch loop through a real Mosquitto: grid status -> imbalance
// -> setpoints -> responses recorded; dispatch requests with MQTT 5
// request/response.
#include <catch2/catch.hpp>

#include "tests/support/mosquitto_broker.h"
#include "tests/support/stack.h"

using namespace derms;
using namespace derms::testing;

namespace {

// A battery whose discharge limit the test can lower behind the
// aggregator's back, as a falling state of charge or a derating would.
class DeratingBattery : public edge::Device {
 public:
  explicit DeratingBattery(std::shared_ptr<std::atomic<double>> max_kw) : max_kw_(max_kw) {}
  edge::PowerRange Range() const override { return {-10.0, max_kw_->load()}; }
  double BaselineKw() const override { return 0; }
  void Step(int64_t, std::optional<double> setpoint) override {
    power_kw_ = setpoint ? std::clamp(*setpoint, Range().min_kw, Range().max_kw) : 0.0;
  }
  edge::Reading Read() const override {
    edge::Reading r;
    r.active_power_kw = power_kw_;
    r.soc_pct = 50;
    r.voltage_v = 240;
    r.frequency_hz = 60;
    return r;
  }

 private:
  std::shared_ptr<std::atomic<double>> max_kw_;
  double power_kw_ = 0;
};

struct Fleet {
  Fleet(const std::string& uri, const TempDir& dir, int batteries, const std::string& sub,
        std::shared_ptr<std::atomic<double>> derated_max = nullptr) {
    std::vector<std::unique_ptr<edge::EdgeAgent>> agents;
    for (int i = 0; i < batteries; ++i) {
      agents.push_back(MakeAgent(
          AgentOptionsFor(uri, fmt::format("{}-bat-{}", sub, i), v1::BATTERY, sub, dir / "state")));
    }
    if (derated_max) {
      auto o = AgentOptionsFor(uri, sub + "-derated", v1::BATTERY, sub, dir / "state");
      o.telemetry_interval_s = 3600;  // the aggregator keeps its first, optimistic reading
      agents.push_back(MakeAgent(o, std::make_unique<DeratingBattery>(derated_max)));
      ++count;
    }
    count += batteries;
    thread = std::make_unique<AgentsThread>(std::move(agents));
  }
  int count = 0;
  std::unique_ptr<AgentsThread> thread;
};

// Waits until every DER has been heard from with telemetry.
void AwaitTelemetry(AggregatorThread& agg, const std::string& sub, int n) {
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(agg->db_path(), fmt::format("SELECT COUNT(DISTINCT der_id) FROM telemetry "
                                                "WHERE der_id LIKE '{}-%'",
                                                sub)) == n;
  }));
}

}  // namespace

TEST_CASE("a deficit makes batteries discharge, with APPLIED and CLAMPED responses recorded",
          "[integration][dispatch]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  auto derated_max = std::make_shared<std::atomic<double>>(10.0);
  Fleet fleet((*broker)->uri(), dir, 2, "sub-d", derated_max);
  AwaitTelemetry(agg, "sub-d", 3);
  derated_max->store(2.0);  // after its telemetry said 10 kW

  TestClient grid((*broker)->uri());
  REQUIRE(grid.Publish(topics::GridStatus("sub-d"), codec::ToJson(GridStatusOf("sub-d", 1030, 1000))).ok());

  std::string db = agg->db_path();
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db, "SELECT COUNT(*) FROM responses") >= 3;
  }));
  // The run is recorded once every answer is in: the CLAMPED battery's
  // shortfall could not go elsewhere (the others are at their limit).
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db, "SELECT COUNT(*) FROM dispatch_runs") == 1;
  }));
  CHECK(QueryInt(db,
                 "SELECT COUNT(*) FROM dispatch_runs WHERE vder_id='sub-d' AND "
                 "substation_id='sub-d' AND trigger='grid_status' AND imbalance_kw=30 AND "
                 "command_kw=30 AND applied=2 AND clamped=1 AND abs(achieved_kw-22)<1e-9 AND "
                 "abs(shortfall_kw-8)<1e-9 AND outcome='completed'") == 1);
  CHECK(QueryInt(db,
                 "SELECT COUNT(*) FROM dispatch_allocations WHERE der_id='sub-d-derated' AND "
                 "state='CLAMPED' AND target_kw=10 AND applied_kw=2") == 1);
  CHECK(QueryInt(db, "SELECT COUNT(*) FROM controls WHERE target_kw=10") == 3);
  CHECK(QueryInt(db, "SELECT COUNT(*) FROM responses WHERE status='APPLIED' AND applied_kw=10") ==
        2);
  CHECK(QueryInt(db,
                 "SELECT COUNT(*) FROM responses WHERE status='CLAMPED' AND applied_kw=2 AND "
                 "der_id='sub-d-derated' AND reason LIKE '%range%'") == 1);
  // The batteries really export: their telemetry shows the setpoint in force.
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db,
                    "SELECT COUNT(DISTINCT der_id) FROM telemetry WHERE setpoint_kw=10 AND "
                    "active_power_kw > 9.99") == 2;
  }));
}

TEST_CASE("one dispatch run reaches hundreds of DERs at once", "[integration][dispatch]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  constexpr int kDers = 250;  // more than Paho's default queue of 100 publishes
  Fleet fleet((*broker)->uri(), dir, kDers, "sub-m");
  AwaitTelemetry(agg, "sub-m", kDers);

  TestClient grid((*broker)->uri());
  REQUIRE(grid.Publish(topics::GridStatus("sub-m"), codec::ToJson(GridStatusOf("sub-m", 1500, 1000))).ok());

  std::string db = agg->db_path();
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db, "SELECT COUNT(*) FROM responses WHERE status='APPLIED'") == kDers;
  }));
  CHECK(QueryInt(db, "SELECT COUNT(*) FROM controls WHERE target_kw=2") == kDers);
}

TEST_CASE("a surplus makes batteries charge", "[integration][dispatch]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  Fleet fleet((*broker)->uri(), dir, 3, "sub-s");
  AwaitTelemetry(agg, "sub-s", 3);

  TestClient grid((*broker)->uri());
  REQUIRE(grid.Publish(topics::GridStatus("sub-s"), codec::ToJson(GridStatusOf("sub-s", 985, 1000))).ok());

  std::string db = agg->db_path();
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db,
                    "SELECT COUNT(DISTINCT der_id) FROM telemetry WHERE setpoint_kw < -4.99 "
                    "AND setpoint_kw > -5.01 AND active_power_kw < -4.99") == 3;
  }));
  CHECK(QueryInt(db, "SELECT COUNT(*) FROM responses WHERE status='APPLIED'") == 3);
}

TEST_CASE("a dispatch request is answered on its MQTT 5 response topic with its correlation data",
          "[integration][dispatch]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  Fleet fleet((*broker)->uri(), dir, 2, "sub-r");
  AwaitTelemetry(agg, "sub-r", 2);

  TestClient utility((*broker)->uri(), {"utility/replies", topics::VderDispatchResult("nowhere")});
  std::string request = R"({"request_id": "r-42", "target_kw": 12, "duration_s": 60})";
  REQUIRE(
      utility.Publish(topics::VderDispatch("sub-r"), request, false, "utility/replies", "corr-7")
          .ok());
  auto reply = utility.Next("utility/replies");
  REQUIRE(reply);
  CHECK(reply->correlation_data == "corr-7");
  v1::DispatchResult result;
  REQUIRE(codec::ParseJson(reply->payload, "result", &result).ok());
  CHECK(result.request_id() == "r-42");
  CHECK(result.allocated_kw() == Approx(12));
  CHECK(result.shortfall_kw() == Approx(0).margin(1e-9));
  CHECK(result.members_dispatched() == 2);

  // A request beyond what the DERs can do reports the shortfall and why.
  REQUIRE(utility
              .Publish(topics::VderDispatch("sub-r"),
                       R"({"request_id": "r-43", "target_kw": 50, "duration_s": 60})", false,
                       "utility/replies", "corr-8")
              .ok());
  // It takes the first request's window over: the first requester is told.
  reply = utility.Next("utility/replies");
  REQUIRE(reply);
  CHECK(reply->correlation_data == "corr-7");
  REQUIRE(codec::ParseJson(reply->payload, "result", &result).ok());
  CHECK(result.request_id() == "r-42");
  CHECK(result.outcome() == v1::DISPATCH_SUPERSEDED);
  CHECK(result.superseded_by_request_id() == "r-43");
  reply = utility.Next("utility/replies");
  REQUIRE(reply);
  CHECK(reply->correlation_data == "corr-8");
  REQUIRE(codec::ParseJson(reply->payload, "result", &result).ok());
  CHECK(result.request_id() == "r-43");
  CHECK(result.outcome() == v1::DISPATCH_PARTIAL);
  CHECK(result.allocated_kw() == Approx(20));
  CHECK(result.shortfall_kw() == Approx(30));
  CHECK_FALSE(result.reason().empty());

  // An unknown virtual DER is answered, not ignored.
  REQUIRE(utility
              .Publish(topics::VderDispatch("nowhere"),
                       R"({"request_id": "r-44", "target_kw": 5, "duration_s": 60})")
              .ok());
  auto unknown = utility.Next(topics::VderDispatchResult("nowhere"));
  REQUIRE(unknown);
  REQUIRE(codec::ParseJson(unknown->payload, "result", &result).ok());
  CHECK(result.shortfall_kw() == Approx(5));
  CHECK(result.outcome() == v1::DISPATCH_REFUSED);
  CHECK(result.reason().find("unknown virtual DER") != std::string::npos);

  // An invalid request is refused, and the refusal names the field.
  REQUIRE(utility
              .Publish(topics::VderDispatch("sub-r"),
                       R"({"request_id": "r-45", "target_kw": 5, "duration_s": 0})", false,
                       "utility/replies", "corr-9")
              .ok());
  reply = utility.Next("utility/replies");
  REQUIRE(reply);
  CHECK(reply->correlation_data == "corr-9");
  REQUIRE(codec::ParseJson(reply->payload, "result", &result).ok());
  CHECK(result.request_id() == "r-45");
  CHECK_THAT(result.reason(), Catch::Contains("duration_s"));
}
