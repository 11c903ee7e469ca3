// Time for domain logic and devices. Simulated time runs `speed` times faster
// than wall time from a shared anchor: at wall time `anchor_ms` it reads
// `start_ms`. A fleet and an aggregator given the same three numbers agree on
// "now" without talking to each other.
#ifndef DERMS_COMMON_CLOCK_H_
#define DERMS_COMMON_CLOCK_H_

#include <cstdint>
#include <string>

namespace derms {

// Milliseconds since the Unix epoch, UTC, read from the wall clock.
int64_t WallNowMs();
// "2023-11-14T22:13:20Z" (with ".500" when there are milliseconds), for any
// epoch ms, independent of the platform's gmtime range.
std::string FormatUtc(int64_t ms);

// Thread-safe after construction (immutable).
class Clock {
 public:
  // Defaults give wall time. anchor_ms 0 means "now"; start_ms 0 means the
  // anchor itself. REQUIRES: speed > 0.
  explicit Clock(double speed = 1.0, int64_t anchor_ms = 0, int64_t start_ms = 0);

  int64_t NowMs() const;
  double speed() const { return speed_; }
  int64_t anchor_ms() const { return anchor_ms_; }
  int64_t start_ms() const { return start_ms_; }

 private:
  double speed_;
  int64_t anchor_ms_;  // wall time at which simulated time reads start_ms_
  int64_t start_ms_;
};

}  // namespace derms

#endif  // DERMS_COMMON_CLOCK_H_
