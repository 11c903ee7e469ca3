#include "common/clock.h"

#include <chrono>
#include <cmath>

namespace derms {

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Clock::Clock(double speed, int64_t anchor_ms, int64_t start_ms)
    : speed_(speed > 0 ? speed : 1.0),
      anchor_ms_(anchor_ms > 0 ? anchor_ms : WallNowMs()),
      start_ms_(start_ms > 0 ? start_ms : anchor_ms_) {}

int64_t Clock::NowMs() const {
  int64_t wall = WallNowMs();
  if (speed_ == 1.0 && start_ms_ == anchor_ms_) return wall;
  return start_ms_ + static_cast<int64_t>(std::llround((wall - anchor_ms_) * speed_));
}

}  // namespace derms
