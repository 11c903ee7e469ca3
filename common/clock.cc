#include "common/clock.h"

#include <fmt/format.h>

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

// "2023-11-14T22:13:20Z" (with ".500" when there are milliseconds), by the
// days-to-civil algorithm of Howard Hinnant's date library: no time zone
// database and no dependence on the platform's gmtime range.
std::string FormatUtc(int64_t ms) {
  int64_t ms_of_day = ((ms % 86400000) + 86400000) % 86400000;
  int64_t days = (ms - ms_of_day) / 86400000;
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t day = doy - (153 * mp + 2) / 5 + 1;
  int64_t month = mp < 10 ? mp + 3 : mp - 9;
  int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  int64_t s = ms_of_day / 1000;
  std::string text = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", year, month, day, s / 3600,
                                 s / 60 % 60, s % 60);
  if (ms_of_day % 1000 != 0) text += fmt::format(".{:03}", ms_of_day % 1000);
  return text + "Z";
}

}  // namespace derms
