// Session rules of the contract, end to end through a real Mosquitto:
// birth, will, late wills, bd_seq across restarts, rebirth, broker loss.
#include <catch2/catch.hpp>

#include "tests/support/mosquitto_broker.h"
#include "tests/support/stack.h"

using namespace derms;
using namespace derms::testing;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<MosquittoBroker> StartBroker() {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  return std::move(broker).value();
}

uint32_t Online(AggregatorThread& agg) { return agg->stats().ders_online; }

}  // namespace

TEST_CASE("an edge agent's birth makes it online and is stored", "[integration][session]") {
  auto broker = StartBroker();
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor(broker->uri(), dir));
  std::vector<std::unique_ptr<edge::EdgeAgent>> agents;
  agents.push_back(
      MakeAgent(AgentOptionsFor(broker->uri(), "bat-1", v1::BATTERY, "sub-a", dir / "state")));
  AgentsThread edge(std::move(agents));

  REQUIRE(WaitFor([&] { return Online(agg) == 1; }));
  REQUIRE(WaitFor([&] { return edge[0].counters().telemetry_sent >= 2; }));
  REQUIRE(agg->FlushStore().ok());
  std::string db = agg->db_path();
  CHECK(QueryInt(db,
                 "SELECT bd_seq FROM ders WHERE der_id='bat-1' AND substation_id='sub-a' "
                 "AND der_type='BATTERY'") == 1);
  CHECK(QueryInt(db, "SELECT COUNT(*) FROM births WHERE der_id='bat-1'") == 1);
  CHECK(QueryInt(db, "SELECT COUNT(*) FROM status_changes WHERE der_id='bat-1' AND online=1") == 1);
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db, "SELECT COUNT(*) FROM telemetry WHERE der_id='bat-1'") >= 1;
  }));
}

TEST_CASE("a killed edge agent's will marks it offline", "[integration][session]") {
  auto broker = StartBroker();
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor(broker->uri(), dir));
  AgentProcess process(broker->uri(), "bat-kill", dir / "state");
  REQUIRE(WaitFor([&] { return Online(agg) == 1; }));

  process.Kill();  // no DISCONNECT: the broker publishes the will

  REQUIRE(WaitFor([&] { return Online(agg) == 0; }));
  REQUIRE(agg->FlushStore().ok());
  CHECK(QueryInt(agg->db_path(),
                 "SELECT COUNT(*) FROM status_changes WHERE der_id='bat-kill' "
                 "AND online=0 AND cause='status' AND bd_seq=1") == 1);
}

TEST_CASE("bd_seq survives restarts and a late will from an older session changes nothing",
          "[integration][session]") {
  auto broker = StartBroker();
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor(broker->uri(), dir));
  TestClient watcher(broker->uri(), {topics::DerBirth("bat-late")});
  auto birth_seq = [&]() -> uint64_t {
    auto m = watcher.Next(topics::DerBirth("bat-late"));
    REQUIRE(m);
    v1::DerBirth b;
    REQUIRE(codec::ParseBinary(m->payload, "birth", &b).ok());
    return b.bd_seq();
  };
  {
    AgentProcess first(broker->uri(), "bat-late", dir / "state");
    CHECK(birth_seq() == 1);
    REQUIRE(WaitFor([&] { return Online(agg) == 1; }));
  }  // killed: its will (bd_seq 1) is delivered now
  REQUIRE(WaitFor([&] { return Online(agg) == 0; }));
  AgentProcess second(broker->uri(), "bat-late", dir / "state");
  CHECK(birth_seq() == 2);
  REQUIRE(WaitFor([&] { return Online(agg) == 1; }));

  // The first session's will arriving late, e.g. from a broker that noticed
  // the dead connection only now.
  v1::DerStatus late;
  late.set_der_id("bat-late");
  late.set_online(false);
  late.set_bd_seq(1);
  late.set_timestamp_ms(WallNowMs());
  uint64_t stale_before = agg->stats().stale_ignored;
  REQUIRE(
      TestClient(broker->uri()).Publish(topics::DerStatus("bat-late"), codec::ToBinary(late)).ok());

  REQUIRE(WaitFor([&] { return agg->stats().stale_ignored > stale_before; }));
  CHECK(Online(agg) == 1);
}

TEST_CASE("telemetry from a DER without a birth gets a rebirth command", "[integration][session]") {
  auto broker = StartBroker();
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor(broker->uri(), dir));
  TestClient client(broker->uri(), {topics::DerCmd("ghost-1")});
  v1::Telemetry t;
  t.set_der_id("ghost-1");
  t.set_seq(1);
  t.set_timestamp_ms(WallNowMs());
  REQUIRE(client.Publish(topics::DerTelemetry("ghost-1"), codec::ToBinary(t)).ok());

  auto cmd = client.Next(topics::DerCmd("ghost-1"));
  REQUIRE(cmd);
  v1::NodeCommand command;
  REQUIRE(codec::ParseBinary(cmd->payload, "cmd", &command).ok());
  CHECK(command.command() == v1::REBIRTH);
  // Nothing says what the DER can produce: the sample is quarantined, kept
  // apart from telemetry and counted.
  REQUIRE(agg->FlushStore().ok());
  CHECK(QueryInt(agg->db_path(), "SELECT COUNT(*) FROM telemetry WHERE der_id='ghost-1'") == 0);
  CHECK(QueryInt(agg->db_path(),
                 "SELECT COUNT(*) FROM telemetry_quarantine WHERE "
                 "der_id='ghost-1' AND reason='no_birth'") == 1);
  CHECK(agg->stats().rejected_by_reason["no_birth"] == 1);
}

TEST_CASE("an edge agent keeps applying and ending controls while the broker is gone",
          "[integration][session]") {
  auto started = MosquittoBroker::Start(/*persistent=*/true);
  REQUIRE(started.ok());
  auto broker = std::move(started).value();
  TempDir dir;
  std::vector<std::unique_ptr<edge::EdgeAgent>> agents;
  agents.push_back(
      MakeAgent(AgentOptionsFor(broker->uri(), "bat-off", v1::BATTERY, "sub-a", dir / "state")));
  AgentsThread edge(std::move(agents));
  REQUIRE(WaitFor([&] { return edge[0].online(); }));
  TestClient operator_client(broker->uri());
  v1::Control c;
  c.set_command_id("hold-3s");
  c.set_issued_at_ms(WallNowMs());
  auto* iv = c.add_intervals();
  iv->set_duration_s(3);
  iv->set_target_kw(4);
  REQUIRE(operator_client.Publish(topics::DerControl("bat-off"), codec::ToBinary(c)).ok());
  REQUIRE(WaitFor([&] { return edge[0].counters().responses_sent >= 1; }));
  // A persistent session that the broker saves, so the watcher misses
  // nothing the agent sends the moment the broker is back.
  TestClient watcher(broker->uri(),
                     {topics::DerResponse("bat-off"), topics::DerTelemetry("bat-off")}, true);
  REQUIRE(broker->WaitForSave());

  broker->Kill();
  REQUIRE(WaitFor([&] { return !edge[0].online(); }));
  // The control ends (COMPLETED) and telemetry is buffered while offline.
  REQUIRE(WaitFor([&] { return edge[0].counters().telemetry_buffered >= 3; }));
  std::this_thread::sleep_for(3500ms);  // past the control's end, still offline
  REQUIRE(broker->Restart().ok());
  REQUIRE(WaitFor([&] { return edge[0].online(); }));
  watcher.Reconnect();
  auto completed = watcher.Next(topics::DerResponse("bat-off"), [](const mqtt::Message& m) {
    v1::ControlResponse r;
    return codec::ParseBinary(m.payload, "response", &r).ok() && r.command_id() == "hold-3s" &&
           r.status() == v1::COMPLETED;
  });
  CHECK(completed);
  auto historical = watcher.Next(topics::DerTelemetry("bat-off"), [](const mqtt::Message& m) {
    v1::Telemetry t;
    return codec::ParseBinary(m.payload, "telemetry", &t).ok() && t.is_historical();
  });
  CHECK(historical);
}
