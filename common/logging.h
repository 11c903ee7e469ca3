// Logging for every program: spdlog to stderr, and a rate limiter so a flood
// of bad messages is reported without drowning the log.
#ifndef DERMS_COMMON_LOGGING_H_
#define DERMS_COMMON_LOGGING_H_

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace derms::logging {

// Sets the default logger's name and level ("trace" ... "off").
// Error "invalid_value" names the level when it is not one of spdlog's.
Status Init(std::string_view program, std::string_view level);

// Lets at most `burst` messages per key through in each `window`, then says
// how many it held back when the window turns over. Thread-safe.
class RateLimited {
 public:
  explicit RateLimited(int burst = 5, std::chrono::milliseconds window = std::chrono::seconds(60));
  void Warn(const std::string& key, std::string_view message);

 private:
  struct Window {
    std::chrono::steady_clock::time_point start;
    int logged = 0;
    uint64_t suppressed = 0;
  };
  const int burst_;
  const std::chrono::milliseconds window_;
  std::mutex mutex_;
  std::unordered_map<std::string, Window> windows_;  // GUARDED_BY(mutex_)
};

}  // namespace derms::logging

#endif  // DERMS_COMMON_LOGGING_H_
