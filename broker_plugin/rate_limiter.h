// Per-DER telemetry rate limits: a token bucket per DER refilled at
// rate_factor / telemetry_interval_s messages per second (the interval its
// birth declared; default_interval_s before one), holding up to rate_burst
// messages; historical telemetry (the edge's offline buffer, replayed on
// reconnect) has a bucket of its own of historical_burst. Pure: the caller
// passes a monotonic clock. Not thread-safe.
#ifndef DERMS_BROKER_PLUGIN_RATE_LIMITER_H_
#define DERMS_BROKER_PLUGIN_RATE_LIMITER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "broker_plugin/options.h"

namespace derms::broker {

class TelemetryRateLimiter {
 public:
  explicit TelemetryRateLimiter(const PluginOptions& options) : options_(options) {}

  // From the DER's accepted birth; 0 or less keeps the default.
  void SetInterval(std::string_view der_id, double telemetry_interval_s);

  enum class Outcome {
    kAdmit,
    kDrop,
    // Dropped, and kick_after_drops in a row reached: disconnect the DER.
    kDropAndKick,
  };
  Outcome Admit(std::string_view der_id, bool historical, int64_t mono_ms);

  size_t size() const { return ders_.size(); }

 private:
  struct Bucket {
    double tokens = -1;  // < 0: not yet used, starts full
    int64_t last_ms = 0;
  };
  struct Der {
    double interval_s = 0;
    Bucket live;
    Bucket historical;
    int64_t drops_in_row = 0;
  };
  bool Take(Bucket* b, double per_s, double capacity, int64_t mono_ms);

  PluginOptions options_;
  std::unordered_map<std::string, Der> ders_;
};

}  // namespace derms::broker

#endif  // DERMS_BROKER_PLUGIN_RATE_LIMITER_H_
