// Virtual DERs through a real Mosquitto: a dispatch to a nested virtual DER
// reaches the leaf DERs and its result agrees with their answers; a member
// that rejects is replaced in the same run; the tree reloads while running
// and a bad reload leaves it in force.
#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/mosquitto_broker.h"
#include "tests/support/stack.h"

using namespace derms;
using namespace derms::testing;

namespace {

// A DER that is born, reports once, and answers every control REJECTED: a
// real MQTT participant standing for a controller that refuses.
class RejectingDer {
 public:
  RejectingDer(const std::string& uri, const std::string& der_id, const std::string& substation)
      : der_id_(der_id), client_(uri, {topics::DerControl(der_id)}) {
    v1::DerBirth b;
    b.set_der_id(der_id);
    b.set_bd_seq(1);
    b.set_der_type(v1::BATTERY);
    b.set_max_discharge_kw(10);
    b.set_max_charge_kw(10);
    b.set_energy_capacity_kwh(40);
    b.set_substation_id(substation);
    b.set_telemetry_interval_s(3600);
    b.set_timestamp_ms(WallNowMs());
    Must(client_.Publish(topics::DerBirth(der_id), codec::ToBinary(b), true));
    v1::Telemetry t;
    t.set_der_id(der_id);
    t.set_seq(1);
    t.set_timestamp_ms(WallNowMs());
    t.set_soc_pct(50);
    t.set_voltage_v(240);
    t.set_frequency_hz(60);
    t.set_available_discharge_kw(10);
    t.set_available_charge_kw(10);
    Must(client_.Publish(topics::DerTelemetry(der_id), codec::ToBinary(t)));
    thread_ = std::thread([this] { Serve(); });
  }
  ~RejectingDer() {
    stop_ = true;
    thread_.join();
  }
  int rejected() const { return rejected_; }

 private:
  static void Must(const Status& s) {
    if (!s.ok()) throw std::runtime_error(s.ToString());
  }
  void Serve() {
    while (!stop_) {
      auto m = client_.Next(topics::DerControl(der_id_), {}, std::chrono::milliseconds(100));
      if (!m) continue;
      v1::Control c;
      if (!c.ParseFromString(m->payload)) continue;
      v1::ControlResponse r;
      r.set_command_id(c.command_id());
      r.set_der_id(der_id_);
      r.set_status(v1::REJECTED);
      r.set_reason("operator lock-out at the site");
      r.set_timestamp_ms(WallNowMs());
      Must(client_.Publish(topics::DerResponse(der_id_), codec::ToBinary(r)));
      ++rejected_;
    }
  }

  std::string der_id_;
  TestClient client_;
  std::atomic<bool> stop_{false};
  std::atomic<int> rejected_{0};
  std::thread thread_;
};

std::unique_ptr<AgentsThread> Batteries(const std::string& uri, const TempDir& dir,
                                        const std::vector<std::string>& ids,
                                        const std::string& substation) {
  std::vector<std::unique_ptr<edge::EdgeAgent>> agents;
  for (const auto& id : ids) {
    agents.push_back(MakeAgent(AgentOptionsFor(uri, id, v1::BATTERY, substation, dir / "state")));
  }
  return std::make_unique<AgentsThread>(std::move(agents));
}

void AwaitTelemetry(AggregatorThread& agg, int n) {
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(agg->db_path(), "SELECT COUNT(DISTINCT der_id) FROM telemetry") == n;
  }));
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

constexpr const char* kNestedTree = R"toml(
[[vder]]
id = "both"
policy = "pro_rata"
children = ["left", "right"]

[[vder]]
id = "left"
policy = "fair_share"
der_ids = ["n-a1", "n-a2"]

[[vder]]
id = "right"
policy = "merit_order"
der_ids = ["n-b1", "n-b2"]
)toml";

}  // namespace

TEST_CASE("a dispatch to a nested virtual DER reaches the leaf DERs and reports their answers",
          "[integration][vder]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  WriteFile(dir / "agg.toml", kNestedTree);
  auto options = AggregatorOptionsFor((*broker)->uri(), dir);
  REQUIRE(aggregator::LoadAggregatorOptions(dir / "agg.toml", &options).ok());
  options.db_path = dir / "derms.db";
  AggregatorThread agg(options);
  auto fleet = Batteries((*broker)->uri(), dir, {"n-a1", "n-a2", "n-b1", "n-b2"}, "sub-n");
  AwaitTelemetry(agg, 4);

  TestClient utility((*broker)->uri(),
                     {"utility/replies", topics::VderStatus("left"), topics::VderStatus("both")});
  REQUIRE(utility
              .Publish(topics::VderDispatch("both"),
                       R"({"request_id": "n-1", "target_kw": 16, "duration_s": 120})", false,
                       "utility/replies", "c-1")
              .ok());
  auto reply = utility.Next("utility/replies");
  REQUIRE(reply);
  v1::DispatchResult result;
  REQUIRE(codec::ParseJson(reply->payload, "result", &result).ok());
  CHECK(result.request_id() == "n-1");
  CHECK(result.allocated_kw() == Approx(16));
  CHECK(result.shortfall_kw() == Approx(0).margin(1e-6));
  // left (fair share) uses both its DERs; right (merit order, equal costs)
  // needs only its first for 8 kW.
  CHECK(result.members_dispatched() == 3);

  std::string db = agg->db_path();
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db, "SELECT COUNT(*) FROM dispatch_runs WHERE request_id='n-1'") == 1;
  }));
  // The result agrees with what the DERs answered: three APPLIED setpoints
  // that add up to the target, split evenly between the two children.
  CHECK(QueryInt(db,
                 "SELECT COUNT(*) FROM responses r JOIN controls c USING (command_id) "
                 "WHERE r.status='APPLIED' AND c.run_id=(SELECT run_id FROM dispatch_runs "
                 "WHERE request_id='n-1')") == 3);
  CHECK(QueryInt(db,
                 "SELECT COUNT(*) FROM dispatch_allocations WHERE vder_id='right' AND "
                 "der_id='n-b1' AND abs(target_kw-8)<1e-6") == 1);
  CHECK(QueryInt(db,
                 "SELECT abs(SUM(r.applied_kw) - 16) < 1e-6 FROM responses r JOIN controls c "
                 "USING (command_id) WHERE r.status='APPLIED' AND c.run_id=(SELECT run_id FROM "
                 "dispatch_runs WHERE request_id='n-1')") == 1);
  CHECK(QueryInt(db,
                 "SELECT abs(SUM(target_kw) - 8) < 1e-6 FROM dispatch_allocations "
                 "WHERE vder_id='left'") == 1);
  // fair_share: both left members at the same fraction of equal ranges.
  CHECK(QueryInt(db,
                 "SELECT COUNT(DISTINCT round(target_kw, 6)) FROM dispatch_allocations "
                 "WHERE vder_id='left'") == 1);
  // The child's retained status shows its share of the run.
  auto left = utility.Next(topics::VderStatus("left"), [](const mqtt::Message& m) {
    v1::VirtualDerStatus st;
    return codec::ParseJson(m.payload, "status", &st).ok() && st.last_run().request_id() == "n-1";
  });
  REQUIRE(left);
  v1::VirtualDerStatus st;
  REQUIRE(codec::ParseJson(left->payload, "status", &st).ok());
  CHECK(st.target_kw() == Approx(8));
  CHECK(st.path() == "both/left");
  CHECK(st.members_total() == 2);
  CHECK(st.members_online() == 2);
}

TEST_CASE("a member that rejects is replaced in the same run", "[integration][vder]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  auto fleet = Batteries((*broker)->uri(), dir, {"j-bat-1", "j-bat-2", "j-bat-3"}, "sub-j");
  RejectingDer rejector((*broker)->uri(), "j-locked", "sub-j");
  AwaitTelemetry(agg, 4);

  // 30 kW over four members with 10 kW each: 7.5 kW each at first; the
  // locked one refuses, so the same run asks the other three for 10 kW.
  v1::GridStatus g;
  g.set_load_kw(1030);
  g.set_supply_kw(1000);
  g.set_frequency_hz(60);
  TestClient grid((*broker)->uri());
  REQUIRE(grid.Publish(topics::GridStatus("sub-j"), codec::ToJson(g)).ok());

  std::string db = agg->db_path();
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db, "SELECT COUNT(*) FROM dispatch_runs") == 1;
  }));
  CHECK(rejector.rejected() == 1);
  CHECK(QueryInt(db,
                 "SELECT COUNT(*) FROM dispatch_runs WHERE vder_id='sub-j' AND rounds=2 AND "
                 "failed=1 AND applied=3 AND abs(achieved_kw-30)<1e-6 AND abs(shortfall_kw)<1e-6 "
                 "AND reason LIKE '%j-locked%lock-out%'") == 1);
  CHECK(QueryInt(db, "SELECT COUNT(*) FROM controls WHERE target_kw=7.5") == 4);
  CHECK(QueryInt(db, "SELECT COUNT(*) FROM controls WHERE target_kw=10") == 3);
  CHECK(QueryInt(db,
                 "SELECT COUNT(*) FROM dispatch_allocations WHERE der_id='j-locked' AND "
                 "state='FAILED' AND applied_kw=0") == 1);
  // And the batteries really export the replacement setpoints.
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db,
                    "SELECT COUNT(DISTINCT der_id) FROM telemetry WHERE setpoint_kw=10 AND "
                    "active_power_kw > 9.99") == 3;
  }));
}

TEST_CASE("the virtual DER tree reloads while running and a bad reload changes nothing",
          "[integration][vder]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  std::string config = dir / "agg.toml";
  WriteFile(config, kNestedTree);
  auto options = AggregatorOptionsFor((*broker)->uri(), dir);
  REQUIRE(aggregator::LoadAggregatorOptions(config, &options).ok());
  options.db_path = dir / "derms.db";
  AggregatorThread agg(options);
  auto fleet = Batteries((*broker)->uri(), dir, {"n-a1", "n-b1"}, "sub-n");
  AwaitTelemetry(agg, 2);
  CHECK(agg->stats().vders == 3);

  // A cycle: refused, named, and the running tree stays.
  WriteFile(config,
            std::string(kNestedTree) + "\n[[vder]]\nid = \"loop\"\nchildren = [\"loop\"]\n");
  agg.RequestReload();
  REQUIRE(WaitFor([&] { return agg->stats().reloads_rejected == 1; }));
  CHECK(agg->stats().reloads == 0);
  CHECK(agg->stats().vders == 3);

  // A good file: a new grouping appears with the DERs already known.
  WriteFile(config, std::string(kNestedTree) +
                        "\n[[vder]]\nid = \"all-batteries\"\ndispatchable = false\n"
                        "der_types = [\"BATTERY\"]\n");
  TestClient watcher((*broker)->uri(), {topics::VderStatus("all-batteries")});
  agg.RequestReload();
  REQUIRE(WaitFor([&] { return agg->stats().reloads == 1; }));
  CHECK(agg->stats().vders == 4);
  auto status = watcher.Next(topics::VderStatus("all-batteries"), [](const mqtt::Message& m) {
    v1::VirtualDerStatus st;
    return codec::ParseJson(m.payload, "status", &st).ok() && st.members_total() == 2;
  });
  REQUIRE(status);
  v1::VirtualDerStatus st;
  REQUIRE(codec::ParseJson(status->payload, "status", &st).ok());
  CHECK_FALSE(st.dispatchable());
  CHECK(st.members_online() == 2);
}
