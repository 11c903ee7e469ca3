// The cloud's view of each DER: online/offline by birth, status and silence,
// late wills, rebirth requests, stale telemetry, activity and substations.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cloud_aggregator/registry/der_registry.h"

using derms::registry::Change;
using derms::registry::DerRegistry;
using derms::registry::DerState;
using derms::registry::OfflineCause;
using derms::registry::RegistryOptions;

namespace {

constexpr int64_t kT0 = 1767225600000;   // 2026-01-01T00:00Z
constexpr int64_t kIntervalMs = 60'000;  // telemetry interval announced in births
constexpr int64_t kWindowMs = 3 * kIntervalMs;

RegistryOptions Options() {
  RegistryOptions o;
  o.offline_after_intervals = 3;
  o.default_telemetry_interval_s = 300;
  o.rebirth_min_interval_ms = 30'000;
  return o;
}

derms::v1::DerBirth Birth(const std::string& der_id, uint64_t bd_seq,
                          const std::string& substation_id = "sub-1",
                          uint32_t telemetry_interval_s = kIntervalMs / 1000) {
  derms::v1::DerBirth b;
  b.set_der_id(der_id);
  b.set_bd_seq(bd_seq);
  b.set_der_type(derms::v1::BATTERY);
  b.set_max_discharge_kw(10);
  b.set_max_charge_kw(10);
  b.set_substation_id(substation_id);
  b.set_telemetry_interval_s(telemetry_interval_s);
  b.set_timestamp_ms(kT0);
  return b;
}

derms::v1::DerStatus StatusMsg(const std::string& der_id, bool online, uint64_t bd_seq) {
  derms::v1::DerStatus s;
  s.set_der_id(der_id);
  s.set_online(online);
  s.set_bd_seq(bd_seq);
  s.set_timestamp_ms(kT0);
  return s;
}

derms::v1::Telemetry Tel(const std::string& der_id, uint64_t seq, double active_power_kw = 1.0) {
  derms::v1::Telemetry t;
  t.set_der_id(der_id);
  t.set_seq(seq);
  t.set_timestamp_ms(kT0);
  t.set_active_power_kw(active_power_kw);
  return t;
}

derms::v1::Telemetry WithAlarm(derms::v1::Telemetry t, derms::v1::Severity severity) {
  auto* a = t.add_alarms();
  a->set_code("INVERTER_FAULT");
  a->set_severity(severity);
  return t;
}

const DerState& Der(const DerRegistry& registry, const std::string& id) {
  const DerState* der = registry.Find(id);
  REQUIRE(der != nullptr);
  return *der;
}

// A DER born at kT0 and heard from once, right after.
DerRegistry RegistryWithLiveDer(const std::string& id = "bat-1") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth(id, 1), kT0);
  registry.OnTelemetry(Tel(id, 1), kT0 + 1000);
  return registry;
}

}  // namespace

TEST_CASE("a birth brings a DER online", "[unit][registry]") {
  DerRegistry registry(Options());
  CHECK(registry.Find("bat-1") == nullptr);
  auto out = registry.OnBirth(Birth("bat-1", 1), kT0);
  CHECK(out.change == Change::kOnline);
  CHECK_FALSE(out.stale);
  const DerState& der = Der(registry, "bat-1");
  CHECK(der.online);
  CHECK(der.has_birth);
  CHECK(der.bd_seq == 1);
  CHECK(der.birth.substation_id() == "sub-1");
  CHECK(registry.size() == 1);
  CHECK(registry.online_count() == 1);

  // A rebirth of the same session is no change.
  CHECK(registry.OnBirth(Birth("bat-1", 1), kT0 + 1000).change == Change::kNone);
  CHECK(registry.online_count() == 1);
}

TEST_CASE("an offline status of the current session takes a DER offline", "[unit][registry]") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth("bat-1", 4), kT0);
  auto out = registry.OnStatus(StatusMsg("bat-1", false, 4), kT0 + 1000);
  CHECK(out.change == Change::kOffline);
  CHECK_FALSE(out.stale);
  CHECK_FALSE(Der(registry, "bat-1").online);
  CHECK(Der(registry, "bat-1").offline_cause == OfflineCause::kStatus);
  CHECK(registry.online_count() == 0);
}

TEST_CASE("a late will of an older session is stale and the DER stays online", "[unit][registry]") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth("bat-1", 1), kT0);
  registry.OnBirth(Birth("bat-1", 2), kT0 + 5000);                         // reconnected
  auto out = registry.OnStatus(StatusMsg("bat-1", false, 1), kT0 + 6000);  // session 1's will
  CHECK(out.stale);
  CHECK(out.change == Change::kNone);
  CHECK(Der(registry, "bat-1").online);
  CHECK(Der(registry, "bat-1").bd_seq == 2);
}

TEST_CASE("a late birth of an older session is stale and changes nothing", "[unit][registry]") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth("bat-1", 2, "sub-new"), kT0);
  auto out = registry.OnBirth(Birth("bat-1", 1, "sub-old"), kT0 + 1000);
  CHECK(out.stale);
  CHECK(Der(registry, "bat-1").bd_seq == 2);
  CHECK(Der(registry, "bat-1").birth.substation_id() == "sub-new");
}

TEST_CASE("a DER silent for more than its offline window is expired", "[unit][registry]") {
  DerRegistry registry = RegistryWithLiveDer();
  const int64_t heard = kT0 + 1000;
  CHECK(registry.ExpireSilent(heard + kWindowMs).empty());  // exactly three intervals: not yet
  CHECK(Der(registry, "bat-1").online);

  auto expired = registry.ExpireSilent(heard + kWindowMs + 1);
  CHECK(expired == std::vector<std::string>{"bat-1"});
  CHECK_FALSE(Der(registry, "bat-1").online);
  CHECK(Der(registry, "bat-1").offline_cause == OfflineCause::kSilence);
  CHECK(registry.ExpireSilent(heard + 2 * kWindowMs).empty());  // reported once
}

TEST_CASE("a birth starts the silence clock", "[unit][registry]") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth("bat-1", 1), kT0);
  CHECK(registry.ExpireSilent(kT0 + kWindowMs).empty());
  CHECK(registry.ExpireSilent(kT0 + kWindowMs + 1) == std::vector<std::string>{"bat-1"});
}

TEST_CASE("a birth without a telemetry interval uses the default one", "[unit][registry]") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth("bat-1", 1, "sub-1", /*telemetry_interval_s=*/0), kT0);
  CHECK(registry.ExpireSilent(kT0 + 3 * 300'000).empty());
  CHECK(registry.ExpireSilent(kT0 + 3 * 300'000 + 1) == std::vector<std::string>{"bat-1"});
}

TEST_CASE("live telemetry after silence brings a DER back online", "[unit][registry]") {
  DerRegistry registry = RegistryWithLiveDer();
  const int64_t later = kT0 + 10 * kWindowMs;
  REQUIRE(registry.ExpireSilent(later).size() == 1);
  auto out = registry.OnTelemetry(Tel("bat-1", 2), later + 1);
  CHECK(out.change == Change::kOnline);
  CHECK(Der(registry, "bat-1").online);
  CHECK(Der(registry, "bat-1").offline_cause == OfflineCause::kNone);
}

TEST_CASE("telemetry from the edge's buffer does not count as hearing from the DER",
          "[unit][registry]") {
  DerRegistry registry = RegistryWithLiveDer();
  const int64_t later = kT0 + 10 * kWindowMs;
  REQUIRE(registry.ExpireSilent(later).size() == 1);
  auto historical = Tel("bat-1", 2);
  historical.set_is_historical(true);
  CHECK(registry.OnTelemetry(historical, later + 1).change == Change::kNone);
  CHECK_FALSE(Der(registry, "bat-1").online);
}

TEST_CASE("after an explicit offline status telemetry does not bring a DER back",
          "[unit][registry]") {
  DerRegistry registry = RegistryWithLiveDer();
  registry.OnStatus(StatusMsg("bat-1", false, 1), kT0 + 2000);
  auto out = registry.OnTelemetry(Tel("bat-1", 2), kT0 + 3000);
  CHECK(out.change == Change::kNone);
  CHECK_FALSE(Der(registry, "bat-1").online);
  CHECK_FALSE(registry.IsActive(Der(registry, "bat-1"), kT0 + 3000));

  // The next session's birth does.
  CHECK(registry.OnBirth(Birth("bat-1", 2), kT0 + 4000).change == Change::kOnline);
  CHECK(Der(registry, "bat-1").online);
}

TEST_CASE("an offline status after a silence expiry still makes telemetry wait for a birth",
          "[unit][registry]") {
  // Same messages as above, but the silence expiry runs before the will
  // arrives (short telemetry interval, long MQTT keep-alive): the outcome
  // must not depend on that timing.
  DerRegistry registry = RegistryWithLiveDer();
  REQUIRE(registry.ExpireSilent(kT0 + 10 * kWindowMs).size() == 1);
  auto will = registry.OnStatus(StatusMsg("bat-1", false, 1), kT0 + 10 * kWindowMs + 1000);
  CHECK_FALSE(will.stale);
  CHECK(Der(registry, "bat-1").offline_cause == OfflineCause::kStatus);

  auto out = registry.OnTelemetry(Tel("bat-1", 2), kT0 + 10 * kWindowMs + 2000);
  CHECK(out.change == Change::kNone);
  CHECK_FALSE(Der(registry, "bat-1").online);
}

TEST_CASE("telemetry from a DER without a birth requests one rebirth, rate limited",
          "[unit][registry]") {
  DerRegistry registry(Options());
  auto first = registry.OnTelemetry(Tel("ghost", 1), kT0);
  CHECK(first.request_rebirth);
  CHECK(first.unborn);  // nothing to check it against: not taken in
  CHECK(first.change == Change::kNone);
  CHECK_FALSE(Der(registry, "ghost").online);
  CHECK_FALSE(Der(registry, "ghost").has_telemetry);

  CHECK_FALSE(registry.OnTelemetry(Tel("ghost", 2), kT0 + 1000).request_rebirth);
  CHECK_FALSE(registry.OnTelemetry(Tel("ghost", 3), kT0 + 29'999).request_rebirth);
  CHECK(registry.OnTelemetry(Tel("ghost", 4), kT0 + 30'000).request_rebirth);

  registry.OnBirth(Birth("ghost", 1), kT0 + 31'000);
  CHECK_FALSE(registry.OnTelemetry(Tel("ghost", 5), kT0 + 90'000).request_rebirth);
}

TEST_CASE("a duplicate or older seq is stale and does not replace the newest telemetry",
          "[unit][registry]") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth("bat-1", 1), kT0);
  CHECK_FALSE(registry.OnTelemetry(Tel("bat-1", 10, 5.0), kT0 + 1000).stale);

  CHECK(registry.OnTelemetry(Tel("bat-1", 10, -3.0), kT0 + 2000).stale);
  CHECK(registry.OnTelemetry(Tel("bat-1", 9, -4.0), kT0 + 3000).stale);
  CHECK(Der(registry, "bat-1").last.seq() == 10);
  CHECK(Der(registry, "bat-1").last.active_power_kw() == 5.0);

  CHECK_FALSE(registry.OnTelemetry(Tel("bat-1", 11, 6.0), kT0 + 4000).stale);
  CHECK(Der(registry, "bat-1").last.seq() == 11);
  CHECK(Der(registry, "bat-1").last.active_power_kw() == 6.0);
}

TEST_CASE("a DER is active only when online, born, heard from recently and not faulted",
          "[unit][registry]") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth("bat-1", 1), kT0);
  CHECK_FALSE(registry.IsActive(Der(registry, "bat-1"), kT0));  // no telemetry yet

  registry.OnTelemetry(Tel("bat-1", 1), kT0 + 1000);
  CHECK(registry.IsActive(Der(registry, "bat-1"), kT0 + 1000));

  registry.OnTelemetry(WithAlarm(Tel("bat-1", 2), derms::v1::WARNING), kT0 + 2000);
  CHECK(registry.IsActive(Der(registry, "bat-1"), kT0 + 2000));

  registry.OnTelemetry(WithAlarm(Tel("bat-1", 3), derms::v1::CRITICAL), kT0 + 3000);
  CHECK(Der(registry, "bat-1").faulted());
  CHECK_FALSE(registry.IsActive(Der(registry, "bat-1"), kT0 + 3000));

  registry.OnTelemetry(Tel("bat-1", 4), kT0 + 4000);  // fault cleared
  CHECK_FALSE(Der(registry, "bat-1").faulted());
  CHECK(registry.IsActive(Der(registry, "bat-1"), kT0 + 4000));

  // Silent, even before ExpireSilent runs.
  CHECK(registry.IsActive(Der(registry, "bat-1"), kT0 + 4000 + kWindowMs));
  CHECK_FALSE(registry.IsActive(Der(registry, "bat-1"), kT0 + 4000 + kWindowMs + 1));
}

// The report: one valid sample with seq 900000 for a live DER whose real
// seq is under 1,000 took it offline for good.
TEST_CASE("one sample with a huge seq is a jump: not adopted, and the DER stays online",
          "[unit][registry]") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth("bat-1", 1), kT0);
  int64_t now = kT0;
  uint64_t seq = 500;
  for (int i = 0; i < 5; ++i) registry.OnTelemetry(Tel("bat-1", ++seq, 2.0), now += kIntervalMs);

  auto forged = registry.OnTelemetry(Tel("bat-1", 900000, 9.0), now + 100);
  CHECK(forged.seq_jump);
  CHECK_FALSE(forged.stale);
  // 505 + 2 x (0 intervals elapsed + 1) + 64.
  CHECK(forged.seq_ceiling == 571);
  CHECK(Der(registry, "bat-1").last.seq() == seq);
  CHECK(Der(registry, "bat-1").last.active_power_kw() == 2.0);

  // The real samples go on being the DER's state, for far longer than its
  // offline window.
  for (int i = 0; i < 20; ++i) {
    now += kIntervalMs;
    auto out = registry.OnTelemetry(Tel("bat-1", ++seq, 3.0), now);
    CHECK_FALSE(out.stale);
    CHECK_FALSE(out.seq_jump);
    CHECK(registry.ExpireSilent(now + 1000).empty());
  }
  CHECK(Der(registry, "bat-1").online);
  CHECK(Der(registry, "bat-1").last.seq() == seq);
  CHECK(Der(registry, "bat-1").last.active_power_kw() == 3.0);
  CHECK(registry.IsActive(Der(registry, "bat-1"), now + 1000));
}

TEST_CASE("a seq jump does not count as hearing from the DER", "[unit][registry]") {
  DerRegistry registry = RegistryWithLiveDer();  // seq 1 heard at kT0 + 1000
  registry.OnTelemetry(Tel("bat-1", 900000), kT0 + kWindowMs);
  CHECK(registry.ExpireSilent(kT0 + 1000 + kWindowMs + 1) == std::vector<std::string>{"bat-1"});
}

TEST_CASE("the seq ceiling grows with the time since the newest sample and with new sessions",
          "[unit][registry]") {
  DerRegistry registry = RegistryWithLiveDer();  // seq 1 heard at kT0 + 1000
  // Ten intervals later: 1 + 2 x (10 + 1) + 64 = 87.
  const int64_t later = kT0 + 1000 + 10 * kIntervalMs;
  CHECK(registry.OnTelemetry(Tel("bat-1", 88), later).seq_jump);
  CHECK_FALSE(registry.OnTelemetry(Tel("bat-1", 87), later).seq_jump);
  CHECK(Der(registry, "bat-1").last.seq() == 87);

  // The edge restarted (new session): it may have skipped its reserved
  // block of 256 seqs.
  registry.OnBirth(Birth("bat-1", 2), later + 1000);
  auto restarted = registry.OnTelemetry(Tel("bat-1", 87 + 256 + 10), later + 2000);
  CHECK_FALSE(restarted.seq_jump);
  CHECK(Der(registry, "bat-1").last.seq() == 87 + 256 + 10);
}

TEST_CASE("a new session does not start seq anew: the edge keeps its counter across restarts",
          "[unit][registry]") {
  DerRegistry registry(Options());
  registry.OnBirth(Birth("bat-1", 1), kT0);
  registry.OnTelemetry(Tel("bat-1", 700, 2.0), kT0 + 1000);
  registry.OnBirth(Birth("bat-1", 2), kT0 + 2000);
  auto lower = registry.OnTelemetry(Tel("bat-1", 3, 5.0), kT0 + 3000);
  CHECK(lower.stale);
  CHECK(Der(registry, "bat-1").last.seq() == 700);
  CHECK(Der(registry, "bat-1").last.active_power_kw() == 2.0);
}

TEST_CASE("live samples with an old seq still keep the DER online and bring it back",
          "[unit][registry]") {
  DerRegistry registry = RegistryWithLiveDer();
  // A sample within the ceiling that later proves to be ahead of the real
  // counter (seq 60): the real samples after it are stale by seq...
  registry.OnTelemetry(Tel("bat-1", 60), kT0 + 2000);
  int64_t now = kT0 + 2000;
  for (uint64_t seq = 2; seq < 12; ++seq) {
    now += kIntervalMs;
    CHECK(registry.OnTelemetry(Tel("bat-1", seq), now).stale);
    CHECK(registry.ExpireSilent(now).empty());  // ...but they arrive: online
  }
  CHECK(registry.IsActive(Der(registry, "bat-1"), now));

  // Silence, then an old-seq live sample: back online.
  REQUIRE(registry.ExpireSilent(now + kWindowMs + 1).size() == 1);
  auto back = registry.OnTelemetry(Tel("bat-1", 12), now + kWindowMs + 2);
  CHECK(back.stale);
  CHECK(back.change == Change::kOnline);
  CHECK(Der(registry, "bat-1").online);
}

TEST_CASE("a run of samples continuing a jump, with nothing of the old sequence between, re-bases",
          "[unit][registry]") {
  DerRegistry registry = RegistryWithLiveDer();  // seq 1
  int64_t now = kT0 + 1000;
  CHECK(registry.OnTelemetry(Tel("bat-1", 5000), now += kIntervalMs).seq_jump);
  CHECK(registry.OnTelemetry(Tel("bat-1", 5001), now += kIntervalMs).seq_jump);
  auto third = registry.OnTelemetry(Tel("bat-1", 5002, 7.0), now += kIntervalMs);
  CHECK_FALSE(third.seq_jump);
  CHECK(third.seq_rebased);
  CHECK(Der(registry, "bat-1").last.seq() == 5002);
  CHECK(Der(registry, "bat-1").last.active_power_kw() == 7.0);
}

TEST_CASE("forged jumps between real samples never re-base the counter", "[unit][registry]") {
  DerRegistry registry = RegistryWithLiveDer();  // seq 1
  int64_t now = kT0 + 1000;
  uint64_t seq = 1;
  for (uint64_t forged = 900000; forged < 900010; ++forged) {
    CHECK(registry.OnTelemetry(Tel("bat-1", forged, 9.0), now += 10).seq_jump);
    CHECK_FALSE(registry.OnTelemetry(Tel("bat-1", ++seq, 1.0), now += kIntervalMs).seq_jump);
  }
  CHECK(Der(registry, "bat-1").last.seq() == seq);
  CHECK(Der(registry, "bat-1").last.active_power_kw() == 1.0);
}
