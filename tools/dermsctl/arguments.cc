#include "tools/dermsctl/arguments.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <exception>
#include <iomanip>
#include <sstream>

namespace derms::dermsctl {

int Fail(std::string_view command, std::string_view message, int exit_code) {
  if (command.empty()) {
    fmt::print(stderr, "dermsctl: {}\n", message);
  } else {
    fmt::print(stderr, "dermsctl {}: {}\n", command, message);
  }
  return exit_code;
}

Status CheckFinite(std::string_view flag, double value) {
  if (std::isfinite(value)) return Status::Ok();
  return Status::Error("invalid_argument",
                       fmt::format("{} {}: must be a finite number", flag, value));
}

Status CheckWaitSeconds(std::string_view flag, double seconds) {
  if (seconds >= 0 && seconds <= kMaxWaitS) return Status::Ok();
  return Status::Error("invalid_argument",
                       fmt::format("{} {}: must be seconds in [0, 1e9]", flag, seconds));
}

Status FirstError(std::initializer_list<Status> checks) {
  for (const Status& s : checks) {
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

void SetpointFlags::AddTo(CLI::App* cmd, const std::string& target_help,
                          const std::string& start_help) {
  cmd->add_option("--target-kw", target_kw, target_help)->required();
  cmd->add_option("--duration-s", duration_s, "default 300")->check(CLI::PositiveNumber);
  cmd->add_option("--start-ms", start_ms, start_help);
}

Status SetpointFlags::Check() const {
  return FirstError({CheckFinite("--target-kw", target_kw),
                     CheckInRange<int64_t>("--duration-s", duration_s, 1, UINT32_MAX)});
}

StatusOr<int64_t> ParseTime(const std::string& flag, const std::string& text, int64_t now_ms) {
  auto bad = [&] {
    return Status::Error("invalid_argument",
                         fmt::format("{} '{}': give epoch ms, an ISO-8601 UTC time "
                                     "(2026-11-21T18:00:00Z) or +N[smhd] / -N[smhd] from now",
                                     flag, text));
  };
  if (text.empty()) return bad();
  if (text[0] == '+' || text[0] == '-') {
    const int64_t sign = text[0] == '-' ? -1 : 1;
    char unit = text.back();
    int64_t scale = unit == 's'   ? 1000
                    : unit == 'm' ? 60000
                    : unit == 'h' ? 3600000
                    : unit == 'd' ? 86400000
                                  : 0;
    if (scale == 0 || text.size() < 3) return bad();
    try {
      size_t used = 0;
      double n = std::stod(text.substr(1, text.size() - 2), &used);
      // At most about ten years ahead, so the sum stays an int64.
      if (used != text.size() - 2 || !(n >= 0) || n * scale > 3.2e11) return bad();
      return now_ms + sign * static_cast<int64_t>(n * scale);
    } catch (const std::exception&) {
      return bad();
    }
  }
  if (std::all_of(text.begin(), text.end(), ::isdigit)) {
    try {
      return static_cast<int64_t>(std::stoll(text));
    } catch (const std::exception&) {
      return bad();
    }
  }
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return bad();
  std::string rest;
  in >> rest;
  if (!rest.empty() && rest != "Z") return bad();
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

}  // namespace derms::dermsctl
