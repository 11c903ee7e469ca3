// Feeder curtailment end to end: a real Mosquitto, the aggregator holding
// the IEEE 123-bus over-voltage scenario, and one PV edge agent at every
// load bus and phase (its feeder_node in its birth). A utility's request on
// vder/{id}/curtail is solved, checked by the power flow, sent to the PVs as
// generation limits, answered by them, applied by their devices, recorded
// in SQLite and published on vder/{id}/curtail/result.
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <map>
#include <string>
#include <vector>

#include "common/codec.h"
#include "feeder/scenario.h"
#include "tests/support/mosquitto_broker.h"
#include "tests/support/stack.h"

using namespace derms;
using namespace derms::testing;

namespace {

constexpr char kFeederVder[] = "ieee123";  // the substation of every PV: its implicit virtual DER
constexpr int64_t kSolarNoonMs = 1782043200000;  // 2026-06-21T12:00Z (PVs at longitude 0)

std::string ScenarioPath() {
  return std::string(DERMS_SOURCE_DIR) + "/feeder/scenarios/ieee123_overvoltage.toml";
}

v1::CurtailResult ParseResult(const mqtt::Message& m) {
  v1::CurtailResult r;
  Status s = codec::ParseJson(m.payload, "curtail result", &r);
  REQUIRE(s.ok());
  return r;
}

// dermsctl with `args`: its exit code and its output (stdout and stderr).
std::pair<int, std::string> Dermsctl(const std::string& broker_uri, const std::string& args,
                                     const TempDir& dir) {
  std::string out_path = dir / "dermsctl.out";
  int status = std::system(fmt::format("{} --broker {} {} > {} 2>&1", DERMS_DERMSCTL_BIN,
                                       broker_uri, args, out_path)
                               .c_str());
  std::ifstream in(out_path);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

}  // namespace

TEST_CASE("a utility's curtailment request brings the 123-bus feeder within 1.05 pu through its "
          "PV agents, each capped and answering",
          "[integration][curtailment]") {
  auto scenario = feeder::LoadScenario(ScenarioPath());
  REQUIRE(scenario.ok());
  auto model = feeder::LoadScenarioFeeder(*scenario);
  REQUIRE(model.ok());
  REQUIRE(model->pvs.size() > 90);

  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  // Shared by the aggregator and the agents: midday, so the PVs produce.
  Clock clock(1.0, 0, kSolarNoonMs);
  auto options = AggregatorOptionsFor((*broker)->uri(), dir);
  options.curtailment.scenario = ScenarioPath();
  options.dispatch.enabled = false;
  AggregatorThread agg(options, clock);

  // One PV per load bus and phase, rated a quarter above the load's kW: with
  // clouds letting 80-100 % of the sun through, about what the scenario has
  // at its peak, which puts the feeder over 1.05 pu.
  std::vector<std::unique_ptr<edge::EdgeAgent>> agents;
  std::map<std::string, std::string> node_of;
  for (const feeder::Pv& pv : model->pvs) {
    const std::string& der_id = pv.id;  // "pv-s1a": already an identifier
    auto o = AgentOptionsFor((*broker)->uri(), der_id, v1::PV, kFeederVder, dir / der_id);
    o.nameplate.max_discharge_kw = 1.25 * pv.rated_kw;
    o.feeder_node = fmt::format("{}.{}", model->buses[pv.bus].name, pv.phase + 1);
    node_of[der_id] = o.feeder_node;
    agents.push_back(MakeAgent(o, edge::MakeSimulatedDevice(o.nameplate, 11, clock.NowMs())));
  }
  const size_t n = agents.size();
  AgentsThread fleet(std::move(agents), clock);
  REQUIRE(WaitFor([&] { return agg->stats().ders_online == n; }, std::chrono::seconds(60)));
  // Every PV's telemetry (its available output) has arrived.
  REQUIRE(WaitFor([&] {
    return QueryInt(dir / "derms.db",
                    "SELECT COUNT(DISTINCT der_id) FROM telemetry") == static_cast<int64_t>(n);
  }, std::chrono::seconds(30)));

  TestClient utility((*broker)->uri(),
                     {topics::VderCurtailResult(kFeederVder), "replies/#",
                      topics::AllDers("telemetry")});
  const std::string result_topic = topics::VderCurtailResult(kFeederVder);

  SECTION("equal ratio: one ratio for every PV, every voltage within the limit after") {
    REQUIRE(utility
                .Publish(topics::VderCurtail(kFeederVder), R"({"request_id":"noon-1"})", false,
                         "replies/noon-1", "c-1")
                .ok());
    auto reply = utility.Next("replies/noon-1", {}, std::chrono::seconds(30));
    REQUIRE(reply);
    v1::CurtailResult r = ParseResult(*reply);
    INFO(reply->payload.substr(0, 2000));
    CHECK(v1::CurtailOutcome_Name(r.outcome()) == "CURTAIL_COMPLETED");
    CHECK(r.request_id() == "noon-1");
    CHECK(r.policy() == "equal_ratio");
    CHECK(r.v_max_before_pu() > 1.05);
    CHECK(r.v_max_after_pu() <= 1.05);
    CHECK(r.max_ratio() > 0.01);
    CHECK(r.max_ratio() == Approx(r.min_ratio()).margin(1e-6));
    CHECK(r.jain_index() == Approx(1.0).margin(1e-6));
    REQUIRE(r.members_size() == static_cast<int>(n));
    std::map<std::string, double> cap_of;
    for (const auto& m : r.members()) {
      INFO(m.der_id());
      CHECK(m.feeder_node() == node_of[m.der_id()]);
      CHECK(v1::ControlStatus_Name(m.status()) == "APPLIED");
      CHECK(m.cap_kw() == Approx((1 - m.ratio()) * m.available_kw()).margin(1e-3));
      CHECK(m.applied_kw() == Approx(m.cap_kw()).margin(1e-3));
      cap_of[m.der_id()] = m.cap_kw();
    }

    // The devices hold their output at the cap: every PV's telemetry taken
    // after the run finished, while the cap lasts, is at or below it.
    size_t checked = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = utility.Next("", {}, std::chrono::milliseconds(200));
      if (!m) continue;
      auto parsed = topics::Parse(m->topic);
      if (!parsed.ok() || parsed->kind != topics::Kind::kDerTelemetry) continue;
      v1::Telemetry t;
      REQUIRE(codec::ParseBinary(m->payload, "telemetry", &t).ok());
      if (t.timestamp_ms() <= r.finished_ms() || t.is_historical()) continue;
      INFO(t.der_id() << " at " << t.active_power_kw() << " kW, cap " << cap_of[t.der_id()]);
      // The result shows caps to 0.001 kW; the PV holds the exact one.
      CHECK(t.active_power_kw() <= cap_of[t.der_id()] + 0.001);
      ++checked;
    }
    CHECK(checked >= n);

    // Recorded: the run, each member and the feeder's voltages before and after.
    const std::string db = dir / "derms.db";
    REQUIRE(WaitFor([&] {
      return QueryInt(db, "SELECT COUNT(*) FROM curtailment_runs WHERE outcome = "
                          "'CURTAIL_COMPLETED' AND request_id = 'noon-1'") == 1;
    }));
    CHECK(QueryInt(db, "SELECT COUNT(*) FROM curtailment_members WHERE status = 'APPLIED'") ==
          static_cast<int64_t>(n));
    CHECK(QueryInt(db, "SELECT COUNT(*) FROM curtailment_voltages WHERE after_pu > 1.05 + 1e-9") ==
          0);
    CHECK(QueryInt(db, "SELECT COUNT(*) FROM curtailment_voltages WHERE before_pu > 1.05") > 0);
  }

  SECTION("limits no curtailment can meet are answered with the reason, and nothing is sent") {
    REQUIRE(utility
                .Publish(topics::VderCurtail(kFeederVder),
                         R"({"request_id":"tight","v_max_pu":1.0})", false, "replies/tight", "c-2")
                .ok());
    auto reply = utility.Next("replies/tight", {}, std::chrono::seconds(30));
    REQUIRE(reply);
    v1::CurtailResult r = ParseResult(*reply);
    INFO(reply->payload.substr(0, 1000));
    CHECK(v1::CurtailOutcome_Name(r.outcome()) == "CURTAIL_INFEASIBLE");
    CHECK_FALSE(r.reason().empty());
    CHECK(r.members_size() == 0);
    CHECK(QueryInt(dir / "derms.db",
                   "SELECT COUNT(*) FROM controls WHERE command_id LIKE 'curtail-%'") == 0);
  }

  SECTION("a request that breaks the rules is refused with the field and the rule") {
    REQUIRE(utility
                .Publish(topics::VderCurtail(kFeederVder),
                         R"({"request_id":"bad","policy":"fairest"})", false, "replies/bad", "c-3")
                .ok());
    auto reply = utility.Next("replies/bad", {}, std::chrono::seconds(15));
    REQUIRE(reply);
    v1::CurtailResult r = ParseResult(*reply);
    CHECK(v1::CurtailOutcome_Name(r.outcome()) == "CURTAIL_REFUSED");
    CHECK_THAT(r.reason(), Catch::Contains("policy 'fairest' is not one of"));

    // The same from dermsctl: the refusal printed, exit 1.
    auto [code, out] = Dermsctl((*broker)->uri(), "curtail --vder ieee123 --policy fairest", dir);
    CHECK(code == 1);
    CHECK_THAT(out, Catch::Contains("refused") && Catch::Contains("policy 'fairest'"));
  }

  SECTION("dermsctl curtail asks and prints the result") {
    auto [code, out] = Dermsctl((*broker)->uri(),
                                "curtail --vder ieee123 --policy per_area --request-id ctl-1 "
                                "--wait 30",
                                dir);
    INFO(out.substr(0, 2000));
    CHECK(code == 0);
    CHECK_THAT(out, Catch::Contains("CURTAIL_COMPLETED") && Catch::Contains("ctl-1"));
  }
}
