// The fleet module's intake of telemetry: checked against the DER's
// nameplate before the registry, the store or the virtual DERs see it;
// seq jumps stored but never taken as the DER's state.
#include <catch2/catch.hpp>
#include <string>

#include "tests/modules/module_rig.h"

using namespace derms;
using namespace derms::testing;

namespace {

void Birth(ModuleRig& rig, const std::string& der_id, v1::DerType type, double discharge_kw,
           double charge_kw) {
  v1::DerBirth b;
  b.set_der_id(der_id);
  b.set_bd_seq(1);
  b.set_der_type(type);
  b.set_max_discharge_kw(discharge_kw);
  b.set_max_charge_kw(charge_kw);
  b.set_substation_id("sub-f");
  b.set_timestamp_ms(rig.time.NowMs());
  b.set_telemetry_interval_s(5);
  rig.Send(topics::DerBirth(der_id), codec::ToBinary(b));
}

void Sample(ModuleRig& rig, const std::string& der_id, uint64_t seq, double active_power_kw) {
  v1::Telemetry t;
  t.set_der_id(der_id);
  t.set_seq(seq);
  t.set_timestamp_ms(rig.time.NowMs());
  t.set_active_power_kw(active_power_kw);
  t.set_voltage_v(240);
  t.set_frequency_hz(60);
  rig.Send(topics::DerTelemetry(der_id), codec::ToBinary(t));
}

double OutputKw(const ModuleRig& rig, const std::string& vder_id) {
  int v = rig.fleet->vders().tree().Find(vder_id);
  REQUIRE(v >= 0);
  return rig.fleet->vders().aggregate(v).output_kw;
}

}  // namespace

TEST_CASE("implausible telemetry is quarantined: counted by reason, never stored or aggregated",
          "[unit][modules][fleet]") {
  ModuleRig rig;
  Birth(rig, "wind-3", v1::WIND, 50, 0);
  Sample(rig, "wind-3", 1, 30);
  CHECK(OutputKw(rig, "sub-f") == 30);

  Sample(rig, "wind-3", 2, 900000);
  auto quarantined = rig.sink.All<storage::QuarantineRecord>();
  REQUIRE(quarantined.size() == 1);
  CHECK(quarantined[0].reason == "implausible");
  CHECK(quarantined[0].telemetry.seq() == 2);
  CHECK(quarantined[0].detail ==
        "telemetry from der 'wind-3': active_power_kw 900000 outside [-0.5, 55.5] (nameplate: "
        "discharge 50 kW, charge 0 kW; + 10 % + 0.5 kW)");
  for (const auto& t : rig.sink.All<storage::TelemetryRecord>()) {
    CHECK(t.telemetry.active_power_kw() < 100);
  }
  CHECK(OutputKw(rig, "sub-f") == 30);
  CHECK(rig.fleet->Find("wind-3")->last.seq() == 1);
  CHECK(rig.Metric("messages_rejected_by_reason", "implausible") == 1);
  CHECK(rig.Metric("messages_rejected") == 1);
}

TEST_CASE("telemetry from a DER with no birth is quarantined until one comes, with a rebirth",
          "[unit][modules][fleet]") {
  ModuleRig rig;
  Sample(rig, "ghost-1", 1, 5);
  REQUIRE(rig.sink.All<storage::QuarantineRecord>().size() == 1);
  CHECK(rig.sink.All<storage::QuarantineRecord>()[0].reason == "no_birth");
  CHECK(rig.sink.All<storage::TelemetryRecord>().empty());
  CHECK(rig.Metric("messages_rejected_by_reason", "no_birth") == 1);
  REQUIRE(rig.CommandsTo("ghost-1").size() == 1);
  CHECK(rig.CommandsTo("ghost-1")[0].command() == v1::REBIRTH);

  Birth(rig, "ghost-1", v1::BATTERY, 10, 10);
  Sample(rig, "ghost-1", 2, 5);
  CHECK(rig.sink.All<storage::TelemetryRecord>().size() == 1);
  CHECK(rig.fleet->Find("ghost-1")->last.seq() == 2);
}

TEST_CASE("a forged sample with a huge seq is stored, counted, and the DER stays online",
          "[unit][modules][fleet]") {
  ModuleRig rig;
  Birth(rig, "bat-9", v1::BATTERY, 10, 10);
  uint64_t seq = 400;
  Sample(rig, "bat-9", ++seq, 2);
  rig.Advance(5000);
  Sample(rig, "bat-9", 900000, 8);
  CHECK(rig.Metric("telemetry_seq_jumps") == 1);
  CHECK(rig.sink.All<storage::TelemetryRecord>().size() == 2);  // stored
  CHECK(OutputKw(rig, "sub-f") == 2);                           // not adopted
  for (int i = 0; i < 10; ++i) {  // ten intervals: three would be the offline window
    rig.Advance(5000);
    Sample(rig, "bat-9", ++seq, 3);
  }
  CHECK(rig.fleet->Find("bat-9")->online);
  CHECK(rig.fleet->IsActive(*rig.fleet->Find("bat-9"), rig.time.NowMs()));
  CHECK(rig.fleet->Find("bat-9")->last.seq() == seq);
  CHECK(OutputKw(rig, "sub-f") == 3);
  for (const auto& st : rig.sink.All<storage::StatusRecord>()) CHECK(st.online);
}
