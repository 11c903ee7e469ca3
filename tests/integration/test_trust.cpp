// Inputs the aggregator can trust, through a real Mosquitto (issue "Inputs
// you can trust", items 1 and 2): one forged sample with a huge seq does not
// take a live DER out of service; a sample its nameplate cannot produce is
// quarantined, kept out of telemetry and the rollups, and counted by reason.
#include <catch2/catch.hpp>

#include "tests/support/mosquitto_broker.h"
#include "tests/support/stack.h"

using namespace derms;
using namespace derms::testing;

namespace {

int64_t FlushAndQuery(AggregatorThread& agg, const std::string& sql) {
  REQUIRE(agg->FlushStore().ok());
  return QueryInt(agg->db_path(), sql);
}

}  // namespace

// The report: a live DER (real seq under 1,000) and one valid Telemetry
// with seq 900000. Before the fix the forged seq became the DER's newest,
// every real sample after it was "stale" and no longer counted as hearing
// from it, so three intervals later it went offline (silence) for good.
TEST_CASE("one forged sample with a huge seq leaves a live DER online and dispatchable",
          "[integration][trust]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  // Interval 1 s: offline after 3 s of silence.
  AgentsThread fleet([&] {
    std::vector<std::unique_ptr<edge::EdgeAgent>> agents;
    agents.push_back(MakeAgent(
        AgentOptionsFor((*broker)->uri(), "tr-bat", v1::BATTERY, "sub-t", dir / "state")));
    return agents;
  }());
  REQUIRE(WaitFor([&] {
    return FlushAndQuery(agg, "SELECT COUNT(*) FROM telemetry WHERE der_id='tr-bat'") >= 2;
  }));
  const int64_t real_seq = FlushAndQuery(agg, "SELECT MAX(seq) FROM telemetry");
  REQUIRE(real_seq < 1000);

  v1::Telemetry forged;
  forged.set_der_id("tr-bat");
  forged.set_seq(900000);
  forged.set_timestamp_ms(WallNowMs());
  forged.set_active_power_kw(0);
  forged.set_soc_pct(50);
  forged.set_voltage_v(240);
  forged.set_frequency_hz(60);
  TestClient attacker((*broker)->uri());
  REQUIRE(attacker.Publish(topics::DerTelemetry("tr-bat"), codec::ToBinary(forged)).ok());

  // Six more real samples: twice the offline window has gone by.
  REQUIRE(WaitFor(
      [&] {
        return FlushAndQuery(agg, fmt::format("SELECT COUNT(*) FROM telemetry WHERE "
                                              "der_id='tr-bat' AND seq > {} AND seq < 900000",
                                              real_seq)) >= 6;
      },
      std::chrono::seconds(30)));
  // Stored, as every sample is, but never the DER's state.
  CHECK(FlushAndQuery(agg, "SELECT COUNT(*) FROM telemetry WHERE seq = 900000") == 1);
  CHECK(FlushAndQuery(agg,
                      "SELECT COUNT(*) FROM status_changes WHERE der_id='tr-bat' AND "
                      "online=0") == 0);
  CHECK(agg->stats().ders_online == 1);

  // Still dispatchable.
  TestClient utility((*broker)->uri(), {"utility/replies"});
  REQUIRE(utility
              .Publish(topics::VderDispatch("sub-t"),
                       R"({"request_id": "tr-1", "target_kw": 5, "duration_s": 60})", false,
                       "utility/replies", "c-1")
              .ok());
  auto reply = utility.Next("utility/replies");
  REQUIRE(reply);
  v1::DispatchResult result;
  REQUIRE(codec::ParseJson(reply->payload, "result", &result).ok());
  CHECK(result.members_dispatched() == 1);
  CHECK(result.allocated_kw() == Approx(5));
}

// The report: 900,000 kW from a 50 kW wind turbine was stored, and the
// rollups of the DER and its virtual DER showed ~900 MW.
TEST_CASE("a sample beyond the DER's nameplate is quarantined, out of telemetry and rollups",
          "[integration][trust]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  auto options = AggregatorOptionsFor((*broker)->uri(), dir);
  options.history.jobs.interval_s = 1;
  options.history.jobs.grace_s = 0;
  AggregatorThread agg(options);
  TestClient der((*broker)->uri(), {topics::AggregatorStatus()});

  v1::DerBirth birth;
  birth.set_der_id("wind-3");
  birth.set_bd_seq(1);
  birth.set_der_type(v1::WIND);
  birth.set_max_discharge_kw(50);
  birth.set_max_charge_kw(0);
  birth.set_substation_id("sub-w");
  birth.set_telemetry_interval_s(60);
  birth.set_timestamp_ms(WallNowMs());
  REQUIRE(der.Publish(topics::DerBirth("wind-3"), codec::ToBinary(birth), true).ok());
  // The virtual DER's rollups sum its members': wait until it has one.
  REQUIRE(WaitFor([&] {
    return FlushAndQuery(agg,
                         "SELECT COUNT(*) FROM vder_members WHERE vder_id='sub-w' AND "
                         "der_id='wind-3'") == 1;
  }));

  // Two samples from the edge's buffer in a 5-minute bucket already over
  // (rolled up by the next pass), one of them 900,000 kW; then a live one.
  const int64_t bucket_ms = (WallNowMs() / 300000 - 2) * 300000;
  auto sample = [&](uint64_t seq, int64_t timestamp_ms, double kw, bool historical) {
    v1::Telemetry t;
    t.set_der_id("wind-3");
    t.set_seq(seq);
    t.set_timestamp_ms(timestamp_ms);
    t.set_active_power_kw(kw);
    t.set_voltage_v(240);
    t.set_frequency_hz(60);
    t.set_is_historical(historical);
    REQUIRE(der.Publish(topics::DerTelemetry("wind-3"), codec::ToBinary(t)).ok());
  };
  sample(1, bucket_ms + 60000, 30, true);
  sample(2, bucket_ms + 120000, 900000, true);
  sample(3, WallNowMs(), 20, false);

  // Counted by reason in aggregator/status.
  auto status = der.Next(topics::AggregatorStatus(), [](const mqtt::Message& m) {
    v1::AggregatorStatus s;
    return codec::ParseJson(m.payload, "aggregator status", &s).ok() &&
           s.rejected_by_reason().count("implausible") == 1 &&
           s.rejected_by_reason().at("implausible") == 1;
  });
  CHECK(status);
  CHECK(agg->stats().rejected_by_reason["implausible"] == 1);

  // Kept apart with the reason, never in telemetry.
  CHECK(FlushAndQuery(agg,
                      "SELECT COUNT(*) FROM telemetry_quarantine WHERE der_id='wind-3' AND seq=2 "
                      "AND reason='implausible' AND active_power_kw=900000 AND detail = "
                      "'telemetry from der ''wind-3'': active_power_kw 900000 outside [-0.5, "
                      "55.5] (nameplate: discharge 50 kW, charge 0 kW; + 10 % + 0.5 kW)'") == 1);
  CHECK(FlushAndQuery(agg, "SELECT COUNT(*) FROM telemetry WHERE der_id='wind-3'") == 2);
  CHECK(FlushAndQuery(agg, "SELECT COUNT(*) FROM telemetry WHERE active_power_kw > 100") == 0);

  // The bucket is rolled up from the plausible sample alone, for the DER
  // and for its virtual DER.
  const std::string bucket =
      fmt::format("FROM rollups_open WHERE resolution_s=300 AND bucket_ms={} AND ", bucket_ms);
  REQUIRE(WaitFor([&] {
    return FlushAndQuery(agg, "SELECT COUNT(*) " + bucket + "kind='vder' AND id='sub-w'") == 1;
  }));
  REQUIRE(WaitFor([&] {
    return FlushAndQuery(agg, "SELECT COUNT(*) " + bucket + "kind='der' AND id='wind-3'") == 1;
  }));
  CHECK(FlushAndQuery(agg, "SELECT COUNT(*) " + bucket +
                               "kind='der' AND id='wind-3' AND max_kw = 30 AND samples = 1") == 1);
  CHECK(FlushAndQuery(agg, "SELECT COUNT(*) " + bucket +
                               "kind='vder' AND id='sub-w' AND max_kw > 0 AND max_kw <= 30") == 1);
  CHECK(FlushAndQuery(agg, "SELECT COUNT(*) FROM rollups_open WHERE max_kw > 100") == 0);
}
