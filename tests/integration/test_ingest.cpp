// Ingest through a real Mosquitto: duplicates stored once, malformed input
// rejected with reasons while good DERs keep being served, retained status.
#include <catch2/catch.hpp>
#include <random>

#include "tests/support/mosquitto_broker.h"
#include "tests/support/stack.h"

using namespace derms;
using namespace derms::testing;

namespace {

v1::Telemetry Sample(const std::string& der_id, uint64_t seq) {
  v1::Telemetry t;
  t.set_der_id(der_id);
  t.set_seq(seq);
  t.set_timestamp_ms(WallNowMs());
  t.set_active_power_kw(1.5);
  t.set_soc_pct(50);
  t.set_voltage_v(240);
  t.set_frequency_hz(60);
  return t;
}

}  // namespace

TEST_CASE("telemetry redelivered with the same der_id and seq is stored once",
          "[integration][ingest]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  TestClient der((*broker)->uri());
  REQUIRE(der.Publish(topics::DerBirth("bat-dup"), codec::ToBinary(BatteryBirth("bat-dup", "sub-i", 60))).ok());
  for (uint64_t seq : {1, 2, 2, 3, 2, 3}) {  // QoS 1 redelivery repeats samples
    REQUIRE(
        der.Publish(topics::DerTelemetry("bat-dup"), codec::ToBinary(Sample("bat-dup", seq))).ok());
  }
  REQUIRE(WaitFor([&] { return agg->stats().accepted >= 7; }));
  REQUIRE(agg->FlushStore().ok());
  CHECK(QueryInt(agg->db_path(), "SELECT COUNT(*) FROM telemetry WHERE der_id='bat-dup'") == 3);
  CHECK(QueryInt(agg->db_path(), "SELECT MAX(seq) FROM telemetry WHERE der_id='bat-dup'") == 3);
  CHECK(agg->stats().rejected == 0);
}

TEST_CASE("malformed payloads are rejected with reasons while good DERs keep being served",
          "[integration][ingest]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  AggregatorThread agg(AggregatorOptionsFor((*broker)->uri(), dir));
  TestClient client((*broker)->uri());
  REQUIRE(client.Publish(topics::DerBirth("bat-good"), codec::ToBinary(BatteryBirth("bat-good", "sub-i", 60))).ok());

  std::mt19937 rng(1234);
  uint64_t seq = 0;
  int bad = 0;
  for (int round = 0; round < 20; ++round) {
    // A good sample between every bad one: the good DER must not suffer.
    REQUIRE(
        client.Publish(topics::DerTelemetry("bat-good"), codec::ToBinary(Sample("bat-good", ++seq)))
            .ok());
    std::string noise(16 + rng() % 64, '\0');
    for (auto& ch : noise) ch = static_cast<char>(rng());
    noise[0] = '\xff';  // never a valid first tag
    REQUIRE(client.Publish(topics::DerTelemetry("bat-noise"), noise).ok());
    ++bad;
  }
  // The wrong message type on a topic: a Control where telemetry belongs.
  v1::Control control;
  control.set_command_id("c-1");
  control.add_intervals()->set_target_kw(1);
  REQUIRE(client.Publish(topics::DerTelemetry("bat-good"), codec::ToBinary(control)).ok());
  ++bad;
  // Telemetry where a birth belongs.
  REQUIRE(
      client.Publish(topics::DerBirth("bat-wrong"), codec::ToBinary(Sample("bat-wrong", 1))).ok());
  ++bad;
  // A bad identifier in the topic.
  REQUIRE(
      client.Publish(topics::Filter("der/bad.id/telemetry"), codec::ToBinary(Sample("bad.id", 1)))
          .ok());
  ++bad;
  // NaN and out-of-range values.
  auto nan_sample = Sample("bat-good", 1000);
  nan_sample.set_active_power_kw(std::nan(""));
  REQUIRE(client.Publish(topics::DerTelemetry("bat-good"), codec::ToBinary(nan_sample)).ok());
  ++bad;
  auto soc_sample = Sample("bat-good", 1001);
  soc_sample.set_soc_pct(140);
  REQUIRE(client.Publish(topics::DerTelemetry("bat-good"), codec::ToBinary(soc_sample)).ok());
  ++bad;
  // Grid status that is not JSON of a GridStatus.
  REQUIRE(client.Publish(topics::GridStatus("sub-i"), "{\"load_kw\": \"lots\"}").ok());
  ++bad;
  REQUIRE(
      client.Publish(topics::DerTelemetry("bat-good"), codec::ToBinary(Sample("bat-good", ++seq)))
          .ok());

  REQUIRE(WaitFor([&] { return agg->stats().rejected >= static_cast<uint64_t>(bad); }));
  REQUIRE(WaitFor([&] { return agg->stats().accepted >= seq + 1; }));
  auto stats = agg->stats();
  CHECK(stats.rejected == static_cast<uint64_t>(bad));
  CHECK(stats.rejected_by_reason["decode_error"] >= 21);  // noise and the bad JSON
  CHECK(stats.rejected_by_reason["invalid_id"] == 1);
  CHECK(stats.rejected_by_reason["invalid_field"] >= 3);  // NaN, soc 140, telemetry as birth
  CHECK(stats.rejected_by_reason["id_mismatch"] == 1);    // the control's command_id as der_id
  REQUIRE(agg->FlushStore().ok());
  CHECK(QueryInt(agg->db_path(), "SELECT COUNT(*) FROM telemetry WHERE der_id='bat-good'") ==
        static_cast<int64_t>(seq));
  CHECK(QueryInt(agg->db_path(), "SELECT COUNT(*) FROM telemetry WHERE der_id<>'bat-good'") == 0);
  CHECK(agg->stats().ders_online == 1);
}

TEST_CASE("the aggregator's status is retained, online while it runs and offline after",
          "[integration][ingest]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  auto agg = std::make_unique<AggregatorThread>(AggregatorOptionsFor((*broker)->uri(), dir));
  auto online_of = [&](const mqtt::Message& m) {
    v1::AggregatorStatus s;
    REQUIRE(codec::ParseJson(m.payload, "aggregator status", &s).ok());
    return s.online();
  };
  {
    // Subscribing late still shows it: the status is retained.
    TestClient late((*broker)->uri(), {topics::AggregatorStatus()});
    auto m = late.Next(topics::AggregatorStatus());
    REQUIRE(m);
    CHECK(m->retained);
    CHECK(online_of(*m));
  }
  agg->Stop();
  TestClient after((*broker)->uri(), {topics::AggregatorStatus()});
  auto m = after.Next(topics::AggregatorStatus());
  REQUIRE(m);
  CHECK_FALSE(online_of(*m));
}
