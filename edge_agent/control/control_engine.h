// The control rules of ../shared/CONTRACT.md for one DER, as a pure state
// machine: no MQTT, no clock of its own. The agent feeds it controls and the
// current time; it answers with the responses to publish and the setpoint to
// apply. Not thread-safe: owned by the agent's loop.
//
// Rules:
// - Invalid controls (bad command_id, another DER's id, no intervals, NaN or
//   infinite targets, zero durations, overlapping intervals, all intervals
//   over) are REJECTED with a reason naming the field.
// - A repeated command_id is answered with the last response sent for it and
//   is never applied twice.
// - A control with a lower priority than the one in force is REJECTED; a
//   higher priority always takes over. At equal priority one with an older
//   issued_at_ms is SUPERSEDED on arrival, and otherwise the newer control
//   supersedes the one in force (which is answered SUPERSEDED). The outcome
//   does not depend on the order in which controls arrive.
// - Targets outside the device's feasible range are clamped (CLAMPED, with
//   applied_kw and the range in the reason), otherwise APPLIED. A schedule
//   answers for each interval as it starts; one starting later is RECEIVED.
// - When the last interval ends the control is COMPLETED and the device goes
//   back to its default behaviour. Between intervals it is at default too.
// - In a schedule, an interval with start_ms 0 starts on receipt (the first)
//   or when the previous interval ends (any later one).
// - A generation limit (Control.kind CONTROL_KIND_GENERATION_LIMIT) caps
//   export instead of setting it: its targets must be >= 0, it is APPLIED
//   with applied_kw the cap (a cap above what the device can give now is
//   simply not binding), and GenerationLimit() rather than Setpoint() says
//   it is in force. Every other rule is the same.
#ifndef DERMS_EDGE_AGENT_CONTROL_CONTROL_ENGINE_H_
#define DERMS_EDGE_AGENT_CONTROL_CONTROL_ENGINE_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "derms/v1/derms.pb.h"

namespace derms::edge {

// Feasible active power right now, in kW: min_kw <= 0 <= max_kw normally
// (import is negative, export positive).
struct PowerRange {
  double min_kw = 0;
  double max_kw = 0;
};

struct ControlEngineOptions {
  // How many command_ids are remembered for idempotent replies.
  size_t remembered_commands = 4096;
  // Most intervals one control may carry (a week at 5-minute resolution is 2016).
  size_t max_intervals = 10000;
};

class ControlEngine {
 public:
  using Responses = std::vector<derms::v1::ControlResponse>;

  explicit ControlEngine(std::string der_id, ControlEngineOptions options = {});

  // A control arrived at `now_ms`; `range` is what the device can do now.
  Responses OnControl(const derms::v1::Control& control, int64_t now_ms, PowerRange range);
  // Moves time forward: starts intervals, ends the control when it is over.
  Responses Advance(int64_t now_ms, PowerRange range);
  // Ends the control in force (CANCELLED), e.g. on a RETURN_TO_DEFAULT command.
  Responses Cancel(int64_t now_ms, const std::string& reason);
  // The device refused the control in force or did not confirm it: ends it,
  // answered REJECTED with `reason` (also to a repeat of its command_id).
  Responses Refuse(int64_t now_ms, const std::string& reason);

  // The setpoint to apply now (already clamped), or nullopt for default behaviour.
  std::optional<double> Setpoint() const;
  // The cap on export in force now (kW >= 0), or nullopt.
  std::optional<double> GenerationLimit() const;
  // The command_id of the control in force, or empty.
  std::string ActiveCommandId() const;

 private:
  struct Interval {
    int64_t start_ms;
    int64_t end_ms;
    double target_kw;
  };
  struct Active {
    std::string command_id;
    int64_t issued_at_ms = 0;
    int32_t priority = 0;
    derms::v1::ControlKind kind = derms::v1::CONTROL_KIND_SETPOINT;
    std::vector<Interval> intervals;
    int current = -1;  // index of the interval in force, -1 if none
    double applied_kw = 0;
  };

  derms::v1::ControlResponse Make(const std::string& command_id, derms::v1::ControlStatus status,
                                  double applied_kw, std::string reason, int64_t now_ms,
                                  uint32_t interval_index = 0);
  // Records `r` as the latest answer for its command_id and appends it.
  void Emit(derms::v1::ControlResponse r, Responses* out);
  // Validates and resolves intervals; on failure returns the reason.
  std::optional<std::string> Resolve(const derms::v1::Control& control, int64_t now_ms,
                                     std::vector<Interval>* out, size_t* skipped) const;
  void StartInterval(int index, int64_t now_ms, PowerRange range, Responses* out);

  const std::string der_id_;
  const ControlEngineOptions options_;
  std::optional<Active> active_;
  std::unordered_map<std::string, derms::v1::ControlResponse> last_response_;
  std::deque<std::string> remembered_order_;  // eviction order of last_response_
};

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_CONTROL_CONTROL_ENGINE_H_
