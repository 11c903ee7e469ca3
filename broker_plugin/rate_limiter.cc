#include "broker_plugin/rate_limiter.h"

#include <algorithm>

namespace derms::broker {

void TelemetryRateLimiter::SetInterval(std::string_view der_id, double telemetry_interval_s) {
  ders_[std::string(der_id)].interval_s = telemetry_interval_s > 0 ? telemetry_interval_s : 0;
}

bool TelemetryRateLimiter::Take(Bucket* b, double per_s, double capacity, int64_t mono_ms) {
  if (b->tokens < 0) {
    b->tokens = capacity;
  } else if (mono_ms > b->last_ms) {
    b->tokens = std::min(capacity, b->tokens + (mono_ms - b->last_ms) / 1000.0 * per_s);
  }
  b->last_ms = std::max(b->last_ms, mono_ms);
  if (b->tokens < 1) return false;
  b->tokens -= 1;
  return true;
}

TelemetryRateLimiter::Outcome TelemetryRateLimiter::Admit(std::string_view der_id, bool historical,
                                                          int64_t mono_ms) {
  Der& d = ders_[std::string(der_id)];
  const double interval_s = d.interval_s > 0 ? d.interval_s : options_.default_interval_s;
  const double per_s = options_.rate_factor / interval_s;
  bool ok = historical ? Take(&d.historical, per_s, options_.historical_burst, mono_ms)
                       : Take(&d.live, per_s, options_.rate_burst, mono_ms);
  if (ok) {
    d.drops_in_row = 0;
    return Outcome::kAdmit;
  }
  ++d.drops_in_row;
  if (options_.kick_after_drops > 0 && d.drops_in_row >= options_.kick_after_drops) {
    d.drops_in_row = 0;
    return Outcome::kDropAndKick;
  }
  return Outcome::kDrop;
}

}  // namespace derms::broker
