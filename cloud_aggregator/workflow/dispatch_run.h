// One dispatch run, closed loop: allocate, send, track the answers, and move
// what failed to other members in the same run. Pure logic: the caller sends
// the controls, feeds the responses in and says when the wait is over.
//
//   DispatchRun run(...);
//   for (size_t i : run.Begin(in_force, deadband)) send, then run.Sent(i, id)
//   run.OnResponse(i, ...) as answers come
//   when !run.Waiting() or the response deadline passes:
//     auto more = run.Correct(); send `more` as above, or finish when empty
//
// A member that answers REJECTED (or SUPERSEDED, CANCELLED, EXPIRED) is
// taken to keep doing what it did (its fallback_kw); one that does not answer
// by the deadline to be at its baseline (the caller tells it to return to its
// default, making that true); a CLAMPED one to be at its applied_kw. Correct() pins them there and
// allocates the same target again, so the shortfall goes to the others. The result reports what was
// achieved, not what was asked. Not thread-safe. The tree must outlive the run.
#ifndef DERMS_CLOUD_AGGREGATOR_WORKFLOW_DISPATCH_RUN_H_
#define DERMS_CLOUD_AGGREGATOR_WORKFLOW_DISPATCH_RUN_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cloud_aggregator/vder/vder_tree.h"
#include "cloud_aggregator/workflow/stages.h"
#include "cloud_aggregator/workflow/tree_allocation.h"
#include "derms/v1/derms.pb.h"

namespace derms::workflow {

enum class MemberState {
  kUncontrolled,  // target is its baseline: no control needed
  kToSend,        // a control is due (Begin/Correct returned it)
  kSent,          // waiting for the answer
  kApplied,       // APPLIED, or a setpoint already in force was kept
  kClamped,       // CLAMPED at applied_kw
  kFailed,        // REJECTED, SUPERSEDED, CANCELLED or EXPIRED
  kNoAnswer,      // no answer by the deadline
};
const char* MemberStateName(MemberState s);

struct RunMember {
  ActiveMember active;
  double target_kw = 0;   // current ask
  double applied_kw = 0;  // what it does, per its answer (or assumed)
  MemberState state = MemberState::kUncontrolled;
  int round = 0;           // round of the last control sent
  std::string command_id;  // of the control it follows for this run
  std::string reason;      // from the answer
  bool held = false;       // keeps a setpoint already in force: no new control
  // What it does if it refuses a new control: the setpoint it already
  // follows (an edge keeps its control when it rejects another), else its
  // baseline.
  double fallback_kw = 0;
};

// A setpoint a member already follows for us; kw is NaN when there is none.
struct InForceSetpoint {
  double kw = std::numeric_limits<double>::quiet_NaN();
  std::string command_id;
  bool keepable = false;  // answered APPLIED and more than half its time left
};

struct RunResult {
  double target_kw = 0;             // what the run was asked for (after stage 5 bounds)
  double planned_kw = 0;            // sum of the first round's allocation
  double achieved_kw = 0;           // sum of what members do, per their answers
  double shortfall_kw = 0;          // target - achieved
  uint32_t members_dispatched = 0;  // members following a setpoint at the end
  uint32_t rounds = 0;
  uint32_t applied = 0, clamped = 0, failed = 0, no_answer = 0;
  std::string reason;  // empty when everything asked was achieved
};

class DispatchRun {
 public:
  DispatchRun(const vder::VderTree& tree, int root, double target_kw,
              std::vector<ActiveMember> members, double duration_s, int max_rounds);

  // First allocation; returns the members to send a control to. A member
  // whose new target is within `deadband_kw` of the setpoint it already
  // follows (`in_force`, one per member) keeps it, and the allocation is
  // redone around it, so holding never costs accuracy: small changes of
  // target do not make the whole fleet re-send, and the sum stays exact.
  std::vector<size_t> Begin(const std::vector<InForceSetpoint>& in_force, double deadband_kw);
  void Sent(size_t i, const std::string& command_id);
  // An answer from the member. Answers to any control but its latest are
  // ignored (the SUPERSEDED of an earlier round, say). RECEIVED means a
  // control that starts later was accepted; COMPLETED is not an outcome.
  void OnResponse(size_t i, const std::string& command_id, derms::v1::ControlStatus status,
                  double applied_kw, const std::string& reason);
  bool Waiting() const;
  // Ends the wait (unanswered members become kNoAnswer) and, when something
  // failed and rounds remain, allocates again around the failures; returns the
  // members to send a new control to (empty: the run is finished).
  std::vector<size_t> Correct();

  const std::vector<RunMember>& members() const { return members_; }
  const TreeAllocation& allocation() const { return allocation_; }
  int round() const { return round_; }
  RunResult Result() const;

 private:
  std::vector<size_t> Allocate();

  const vder::VderTree& tree_;
  const int root_;
  const double target_kw_;
  const double duration_s_;
  const int max_rounds_;
  std::vector<RunMember> members_;
  TreeAllocation allocation_;
  double planned_kw_ = 0;
  int round_ = 0;
};

}  // namespace derms::workflow

#endif  // DERMS_CLOUD_AGGREGATOR_WORKFLOW_DISPATCH_RUN_H_
