// What dermsctl's subcommands share to check their arguments and report a
// failure: one line on stderr that names the command, the input, the field
// and the rule, e.g. "dermsctl grid: --load-kw nan: must be a finite number",
// and the exit code to return.
#ifndef DERMS_TOOLS_DERMSCTL_ARGUMENTS_H_
#define DERMS_TOOLS_DERMSCTL_ARGUMENTS_H_

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

#include "common/status.h"

namespace derms::dermsctl {

// Exit codes of a subcommand's run; CLI11's own parse errors keep CLI11's.
inline constexpr int kExitFailure = 1;      // the broker, a file, no answer
inline constexpr int kExitBadArgument = 2;  // an argument breaks a rule

// Prints "dermsctl COMMAND: MESSAGE" (or "dermsctl: MESSAGE" when `command`
// is empty) on stderr and returns `exit_code`.
int Fail(std::string_view command, std::string_view message, int exit_code = kExitFailure);

// Ok, or "FLAG VALUE: must be a finite number" (NaN and infinities are not).
[[nodiscard]] Status CheckFinite(std::string_view flag, double value);

// Ok, or "FLAG VALUE: must be in [MIN, MAX]" (NaN is in no range).
template <typename T>
[[nodiscard]] Status CheckInRange(std::string_view flag, T value, T min, T max) {
  if (value >= min && value <= max) return Status::Ok();
  return Status::Error("invalid_argument",
                       fmt::format("{} {}: must be in [{}, {}]", flag, value, min, max));
}

// Seconds to wait for a broker's answers: in [0, kMaxWaitS], so the deadline
// stays an int64 of milliseconds.
inline constexpr double kMaxWaitS = 1e9;
[[nodiscard]] Status CheckWaitSeconds(std::string_view flag, double seconds);

// The first failed check of `checks`, else Ok.
[[nodiscard]] Status FirstError(std::initializer_list<Status> checks);

// A time on the command line: epoch milliseconds, ISO-8601 UTC
// ("2026-11-21T18:00:00Z"), or relative to `now_ms` ("+90m", "-4h", "+2d").
// An error names `flag`, the text and the forms accepted.
[[nodiscard]] StatusOr<int64_t> ParseTime(const std::string& flag, const std::string& text,
                                          int64_t now_ms);

// --target-kw, --duration-s and --start-ms: a power target over an interval,
// as dispatch and control take it.
struct SetpointFlags {
  double target_kw = 0;      // required
  int64_t duration_s = 300;  // in [1, 2^32 - 1], the wire's uint32
  int64_t start_ms = 0;      // 0: the command says when

  // Adds the three flags to `cmd`; the help texts say what the target and a
  // start of 0 mean to that command.
  void AddTo(CLI::App* cmd, const std::string& target_help, const std::string& start_help);
  // Ok, or the first flag that breaks its rule.
  [[nodiscard]] Status Check() const;
};

// Parses a time flag ("--from", text) into epoch ms, relative to a clock's now.
using TimeParser = std::function<StatusOr<int64_t>(const std::string&, const std::string&)>;

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_ARGUMENTS_H_
