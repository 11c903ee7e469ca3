#include "common/logging.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace derms::logging {

Status Init(std::string_view program, std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return Status::Error("invalid_value",
                         fmt::format("log level '{}' is not one of trace, debug, info, warn, "
                                     "error, critical, off",
                                     level));
  }
  auto logger = spdlog::stderr_color_mt(std::string(program));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %n %^%l%$ %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

RateLimited::RateLimited(int burst, std::chrono::milliseconds window)
    : burst_(burst), window_(window) {}

void RateLimited::Warn(const std::string& key, std::string_view message) {
  auto now = std::chrono::steady_clock::now();
  uint64_t held_back = 0;
  bool log = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Window& w = windows_[key];
    if (now - w.start >= window_) {
      held_back = w.suppressed;
      w = Window{now, 0, 0};
    }
    if (w.logged < burst_) {
      ++w.logged;
      log = true;
    } else {
      ++w.suppressed;
    }
  }
  if (held_back > 0) spdlog::warn("[{}] {} similar messages were not logged", key, held_back);
  if (log) spdlog::warn("[{}] {}", key, message);
}

}  // namespace derms::logging
