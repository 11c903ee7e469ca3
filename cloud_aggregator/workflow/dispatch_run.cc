#include "cloud_aggregator/workflow/dispatch_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace derms::workflow {
namespace {

// Setpoints closer than this are the same setpoint (kW).
constexpr double kSameKw = 1e-6;

bool Failed(MemberState s) {
  return s == MemberState::kClamped || s == MemberState::kFailed || s == MemberState::kNoAnswer;
}

// Members whose output this run can no longer change.
bool Pinned(const RunMember& m) { return m.held || Failed(m.state); }

}  // namespace

const char* MemberStateName(MemberState s) {
  switch (s) {
    case MemberState::kUncontrolled:
      return "UNCONTROLLED";
    case MemberState::kToSend:
      return "TO_SEND";
    case MemberState::kSent:
      return "SENT";
    case MemberState::kApplied:
      return "APPLIED";
    case MemberState::kClamped:
      return "CLAMPED";
    case MemberState::kFailed:
      return "FAILED";
    case MemberState::kNoAnswer:
      return "NO_ANSWER";
  }
  return "UNKNOWN";
}

DispatchRun::DispatchRun(const vder::VderTree& tree, int root, double target_kw,
                         std::vector<ActiveMember> members, double duration_s, int max_rounds)
    : tree_(tree),
      root_(root),
      target_kw_(target_kw),
      duration_s_(duration_s),
      max_rounds_(max_rounds) {
  members_.reserve(members.size());
  for (auto& a : members) {
    RunMember m;
    m.target_kw = m.applied_kw = m.fallback_kw = a.member.baseline_kw;
    m.active = std::move(a);
    members_.push_back(std::move(m));
  }
}

std::vector<size_t> DispatchRun::Allocate() {
  std::vector<ActiveMember> view;
  view.reserve(members_.size());
  for (const auto& m : members_) {
    view.push_back(m.active);
    if (Pinned(m)) {
      // What it does now is all it will do in this run.
      dispatch::Member& pin = view.back().member;
      pin.min_kw = pin.max_kw = pin.baseline_kw = m.applied_kw;
    }
  }
  allocation_ = AllocateTree(tree_, root_, target_kw_, view, duration_s_);
  std::vector<size_t> send;
  for (size_t i = 0; i < members_.size(); ++i) {
    RunMember& m = members_[i];
    if (Pinned(m)) continue;
    double t = allocation_.target_kw[i];
    bool at_baseline = std::abs(t - m.active.member.baseline_kw) <= kSameKw;
    if (m.state == MemberState::kUncontrolled && at_baseline) continue;
    if (m.state == MemberState::kApplied && std::abs(t - m.target_kw) <= kSameKw) continue;
    m.target_kw = t;
    m.state = MemberState::kToSend;
    m.round = round_;
    send.push_back(i);
  }
  return send;
}

std::vector<size_t> DispatchRun::Begin(const std::vector<InForceSetpoint>& in_force,
                                       double deadband_kw) {
  round_ = 1;
  for (size_t i = 0; i < members_.size() && i < in_force.size(); ++i) {
    if (!std::isnan(in_force[i].kw)) members_[i].fallback_kw = in_force[i].kw;
  }
  auto send = Allocate();
  bool held = false;
  // Every member, not only those due a control: one whose edge reports no
  // baseline has its setpoint as baseline, so "no change needed" must keep
  // the setpoint, not release it.
  for (size_t i = 0; i < members_.size() && i < in_force.size(); ++i) {
    if (!in_force[i].keepable) continue;
    RunMember& m = members_[i];
    if (std::abs(m.target_kw - in_force[i].kw) >= deadband_kw) continue;
    m.held = true;
    m.state = MemberState::kApplied;
    m.target_kw = m.applied_kw = in_force[i].kw;
    m.command_id = in_force[i].command_id;
    held = true;
  }
  // The others make up what the held ones leave over.
  if (held) {
    for (auto& m : members_) {
      if (m.held) continue;
      m.state = MemberState::kUncontrolled;
      m.target_kw = m.applied_kw = m.active.member.baseline_kw;
    }
    send = Allocate();
  }
  planned_kw_ = allocation_.root.allocated_kw;
  return send;
}

void DispatchRun::Sent(size_t i, const std::string& command_id) {
  members_[i].state = MemberState::kSent;
  members_[i].command_id = command_id;
}

void DispatchRun::OnResponse(size_t i, const std::string& command_id,
                             derms::v1::ControlStatus status, double applied_kw,
                             const std::string& reason) {
  RunMember& m = members_[i];
  if (command_id != m.command_id) return;
  // Late answers change nothing: a silent member was told to return to its
  // default and its share went to others.
  if (m.state != MemberState::kSent) return;
  switch (status) {
    case derms::v1::RECEIVED:  // accepted, to start later
    case derms::v1::APPLIED:
      m.state = MemberState::kApplied;
      m.applied_kw = m.fallback_kw = m.target_kw;
      break;
    case derms::v1::CLAMPED:
      // A device clamps into what it can do: an answer outside the range it
      // reported is not believed beyond that range.
      m.state = MemberState::kClamped;
      m.applied_kw = m.fallback_kw =
          std::clamp(applied_kw, m.active.member.min_kw, m.active.member.max_kw);
      break;
    case derms::v1::REJECTED:
    case derms::v1::SUPERSEDED:
    case derms::v1::CANCELLED:
    case derms::v1::EXPIRED:
      m.state = MemberState::kFailed;
      m.applied_kw = m.fallback_kw;
      break;
    default:
      return;
  }
  m.reason = reason;
}

bool DispatchRun::Waiting() const {
  for (const auto& m : members_) {
    if (m.state == MemberState::kSent || m.state == MemberState::kToSend) return true;
  }
  return false;
}

std::vector<size_t> DispatchRun::Correct() {
  bool failures = false;
  for (auto& m : members_) {
    if (m.state == MemberState::kSent || m.state == MemberState::kToSend) {
      m.state = MemberState::kNoAnswer;
      m.applied_kw = m.fallback_kw = m.active.member.baseline_kw;
      m.reason = "no answer before the response deadline";
    }
    // Only failures of the round just ended call for another round.
    if (Failed(m.state) && m.round == round_) failures = true;
  }
  if (!failures || round_ >= max_rounds_) return {};
  ++round_;
  return Allocate();
}

RunResult DispatchRun::Result() const {
  RunResult r;
  r.target_kw = target_kw_;
  r.planned_kw = planned_kw_;
  r.rounds = static_cast<uint32_t>(round_);
  std::string failed_ids;
  for (const auto& m : members_) {
    switch (m.state) {
      case MemberState::kApplied:
        ++r.applied;
        ++r.members_dispatched;
        break;
      case MemberState::kClamped:
        ++r.clamped;
        ++r.members_dispatched;
        break;
      case MemberState::kFailed:
        ++r.failed;
        break;
      case MemberState::kNoAnswer:
        ++r.no_answer;
        break;
      default:
        break;
    }
    r.achieved_kw += m.state == MemberState::kApplied ? m.target_kw : m.applied_kw;
    if ((m.state == MemberState::kFailed || m.state == MemberState::kNoAnswer) &&
        failed_ids.size() < 200) {
      failed_ids += fmt::format("{}{} ({})", failed_ids.empty() ? "" : ", ", m.active.der_id,
                                m.reason.empty() ? MemberStateName(m.state) : m.reason);
    }
  }
  r.shortfall_kw = target_kw_ - r.achieved_kw;
  std::vector<std::string> parts;
  if (r.failed) parts.push_back(fmt::format("{} rejected", r.failed));
  if (r.clamped) parts.push_back(fmt::format("{} clamped", r.clamped));
  if (r.no_answer) parts.push_back(fmt::format("{} did not answer", r.no_answer));
  if (!parts.empty() || std::abs(r.shortfall_kw) > 1e-3) {
    r.reason = parts.empty() ? "" : fmt::format("{}", fmt::join(parts, ", "));
    if (r.rounds > 1) {
      r.reason += fmt::format("; shortfall moved to other members over {} rounds", r.rounds);
    }
    if (std::abs(r.shortfall_kw) > 1e-3) {
      r.reason += fmt::format("{}achieved {:.1f} of {:.1f} kW", r.reason.empty() ? "" : "; ",
                              r.achieved_kw, target_kw_);
    }
    if (!failed_ids.empty()) r.reason += "; " + failed_ids;
  }
  return r;
}

}  // namespace derms::workflow
