// The dispatch setpoints the aggregator sent, which DERs accepted, and which
// each DER follows now. One ledger instead of three maps kept in step by hand.
//
// Invariants (checked by tests/cloud_aggregator/test_control_ledger.cpp):
//   - the latest control of a DER is one sent to that DER and still known;
//   - a control is in force for a DER only after the DER accepted it
//     (APPLIED, CLAMPED or RECEIVED) while it was the latest one sent to it;
//   - a refusal (any other answer) of the control in force ends it; a refusal
//     of a newer control leaves the older one in force (the DER keeps it);
//   - Release and Yield leave nothing of ours in force or pending for a DER,
//     so a late acceptance of an old control cannot put it back in force;
//   - controls are forgotten a minute after they end (late answers have had
//     their chance), in-force entries when they end.
// Pure logic; not thread-safe (the processing thread owns it).
#ifndef DERMS_CLOUD_AGGREGATOR_CONTROLS_CONTROL_LEDGER_H_
#define DERMS_CLOUD_AGGREGATOR_CONTROLS_CONTROL_LEDGER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "derms/v1/derms.pb.h"

namespace derms::controls {

struct SentControl {
  std::string command_id;
  std::string der_id;
  int64_t run_id = 0;  // the dispatch run that sent it
  size_t member = 0;   // the DER's index in that run
  double kw = 0;       // the setpoint
  int64_t begins_ms = 0;
  int64_t ends_ms = 0;  // device time
};

// The control a DER follows for us.
struct InForce {
  std::string command_id;
  int64_t run_id = 0;
  double kw = 0;         // the setpoint, or what the DER clamped it to
  int64_t ends_ms = 0;   // device time
  bool applied = false;  // APPLIED as asked: a later run may keep it
};

class ControlLedger {
 public:
  // How long after its end a control's late answers still count.
  static constexpr int64_t kLateAnswerMs = 60000;

  // A control was sent: it becomes the DER's latest.
  void Sent(SentControl control);
  // A DER answered `command_id`. Returns the control it answers, or null
  // when it is not one of ours (or long forgotten).
  const SentControl* OnAnswer(const std::string& der_id, const std::string& command_id,
                              derms::v1::ControlStatus status, double applied_kw);
  // A control we sent and have not forgotten, or null.
  const SentControl* Find(const std::string& command_id) const;
  // We told the DER to return to its default: nothing of ours is in force
  // or pending for it.
  void Release(const std::string& der_id);
  // Another party (an owner's charging schedule) took the DER over: as
  // Release, but nothing is sent to it.
  void Yield(const std::string& der_id) { Release(der_id); }
  // The control the DER follows for us at `now_ms`, or null.
  const InForce* InForceFor(const std::string& der_id, int64_t now_ms) const;
  // DERs with a control in force (any end), in no particular order.
  std::vector<std::string> DersInForce() const;
  // Drops controls past their late-answer window and in-force entries past
  // their end.
  void ForgetEnded(int64_t now_ms);

  size_t sent_size() const { return sent_.size(); }
  size_t in_force_size() const { return in_force_.size(); }
  // Every invariant above, for tests: "" when they hold, else the first
  // broken one.
  std::string CheckInvariants() const;

 private:
  std::unordered_map<std::string, SentControl> sent_;         // by command_id
  std::unordered_map<std::string, std::string> latest_sent_;  // der_id -> command_id
  std::unordered_map<std::string, InForce> in_force_;         // by der_id
};

// True for the answers that mean the DER follows (or will follow) a control.
bool Accepts(derms::v1::ControlStatus status);

}  // namespace derms::controls

#endif  // DERMS_CLOUD_AGGREGATOR_CONTROLS_CONTROL_LEDGER_H_
