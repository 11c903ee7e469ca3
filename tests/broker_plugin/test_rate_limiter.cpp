#include <catch2/catch.hpp>

#include "broker_plugin/rate_limiter.h"

using namespace derms::broker;
using Outcome = TelemetryRateLimiter::Outcome;

namespace {

// Messages admitted out of `n` sent `gap_ms` apart from t = 0.
int Admitted(TelemetryRateLimiter& limiter, const char* der, int n, int64_t gap_ms,
             bool historical = false, int64_t start_ms = 0) {
  int admitted = 0;
  for (int i = 0; i < n; ++i) {
    admitted += limiter.Admit(der, historical, start_ms + i * gap_ms) == Outcome::kAdmit;
  }
  return admitted;
}

}  // namespace

TEST_CASE("telemetry at its declared interval always passes", "[rate]") {
  PluginOptions o;
  TelemetryRateLimiter limiter(o);
  limiter.SetInterval("bat-1", 5);
  CHECK(Admitted(limiter, "bat-1", 1000, 5000) == 1000);
}

TEST_CASE("a flood is held to rate_factor times the declared rate after the burst", "[rate]") {
  PluginOptions o;  // factor 10, burst 10
  TelemetryRateLimiter limiter(o);
  limiter.SetInterval("bat-1", 10);  // 1 message/s allowed
  // 1000 messages over 10 s: the burst, then one per second.
  int admitted = Admitted(limiter, "bat-1", 1000, 10);
  CHECK(admitted >= 19);
  CHECK(admitted <= 21);
  // Another DER is not affected.
  limiter.SetInterval("pv-1", 10);
  CHECK(Admitted(limiter, "pv-1", 5, 1000, false, 10000) == 5);
}

TEST_CASE("before a birth the default interval applies", "[rate]") {
  PluginOptions o;
  o.default_interval_s = 1;  // 10 messages/s
  o.rate_burst = 1;
  TelemetryRateLimiter limiter(o);
  CHECK(Admitted(limiter, "bat-1", 100, 100) == 100);
  CHECK(Admitted(limiter, "bat-2", 100, 10) <= 11);
}

TEST_CASE("historical telemetry has its own, larger burst", "[rate]") {
  PluginOptions o;
  o.historical_burst = 500;
  TelemetryRateLimiter limiter(o);
  limiter.SetInterval("bat-1", 60);
  CHECK(Admitted(limiter, "bat-1", 500, 1, true) == 500);
  // Live telemetry still has its own bucket.
  CHECK(limiter.Admit("bat-1", false, 600) == Outcome::kAdmit);
}

TEST_CASE("a DER dropping kick_after_drops in a row is to be disconnected", "[rate]") {
  PluginOptions o;
  o.rate_burst = 1;
  o.kick_after_drops = 3;
  TelemetryRateLimiter limiter(o);
  limiter.SetInterval("bat-1", 60);
  CHECK(limiter.Admit("bat-1", false, 0) == Outcome::kAdmit);
  CHECK(limiter.Admit("bat-1", false, 1) == Outcome::kDrop);
  CHECK(limiter.Admit("bat-1", false, 2) == Outcome::kDrop);
  CHECK(limiter.Admit("bat-1", false, 3) == Outcome::kDropAndKick);
}
