#include "edge_agent/control/control_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace derms::edge {

using derms::v1::Control;
using derms::v1::ControlResponse;
using derms::v1::ControlStatus;

namespace {
constexpr size_t kMaxCommandIdLength = 128;
}  // namespace

ControlEngine::ControlEngine(std::string der_id, ControlEngineOptions options)
    : der_id_(std::move(der_id)), options_(options) {}

ControlResponse ControlEngine::Make(const std::string& command_id, ControlStatus status,
                                    double applied_kw, std::string reason, int64_t now_ms,
                                    uint32_t interval_index) {
  ControlResponse r;
  r.set_command_id(command_id);
  r.set_status(status);
  r.set_applied_kw(applied_kw);
  r.set_reason(std::move(reason));
  r.set_timestamp_ms(now_ms);
  r.set_der_id(der_id_);
  r.set_interval_index(interval_index);
  return r;
}

void ControlEngine::Emit(ControlResponse r, Responses* out) {
  auto [it, inserted] = last_response_.insert_or_assign(r.command_id(), r);
  (void)it;
  if (inserted) {
    remembered_order_.push_back(r.command_id());
    while (remembered_order_.size() > options_.remembered_commands) {
      last_response_.erase(remembered_order_.front());
      remembered_order_.pop_front();
    }
  }
  out->push_back(std::move(r));
}

std::optional<std::string> ControlEngine::Resolve(const Control& control, int64_t now_ms,
                                                  std::vector<Interval>* out,
                                                  size_t* skipped) const {
  if (!control.der_id().empty() && control.der_id() != der_id_) {
    return fmt::format("der_id '{}' is not this DER ('{}')", control.der_id(), der_id_);
  }
  if (control.intervals().empty()) return std::string("intervals: at least one is required");
  const bool limit = control.kind() == derms::v1::CONTROL_KIND_GENERATION_LIMIT;
  if (!limit && control.kind() != derms::v1::CONTROL_KIND_SETPOINT) {
    return fmt::format("kind {} is not a known control kind", static_cast<int>(control.kind()));
  }
  if (static_cast<size_t>(control.intervals_size()) > options_.max_intervals) {
    return fmt::format("intervals: {} given, at most {} allowed", control.intervals_size(),
                       options_.max_intervals);
  }
  int64_t previous_end = 0;
  for (int i = 0; i < control.intervals_size(); ++i) {
    const auto& in = control.intervals(i);
    if (!std::isfinite(in.target_kw())) {
      return fmt::format("intervals[{}].target_kw {} is not a finite number", i, in.target_kw());
    }
    if (limit && in.target_kw() < 0) {
      return fmt::format("intervals[{}].target_kw {} is below 0: a generation limit caps export",
                         i, in.target_kw());
    }
    if (in.duration_s() == 0) return fmt::format("intervals[{}].duration_s must be > 0", i);
    if (in.start_ms() < 0) return fmt::format("intervals[{}].start_ms must be >= 0", i);
    int64_t start = in.start_ms();
    if (start == 0) start = (i == 0) ? now_ms : previous_end;
    if (i > 0 && start < previous_end) {
      return fmt::format("intervals[{}] starts at {} before intervals[{}] ends at {}", i, start,
                         i - 1, previous_end);
    }
    int64_t end = start + static_cast<int64_t>(in.duration_s()) * 1000;
    out->push_back({start, end, in.target_kw()});
    previous_end = end;
  }
  if (previous_end <= now_ms) {
    return fmt::format("every interval is over: the last ended at {} ms, now is {} ms",
                       previous_end, now_ms);
  }
  // Intervals already over are dropped; the rest run.
  auto first_live = std::find_if(out->begin(), out->end(),
                                 [&](const Interval& iv) { return iv.end_ms > now_ms; });
  *skipped = static_cast<size_t>(first_live - out->begin());
  return std::nullopt;
}

void ControlEngine::StartInterval(int index, int64_t now_ms, PowerRange range, Responses* out) {
  Active& a = *active_;
  a.current = index;
  double target = a.intervals[index].target_kw;
  // A cap is not clamped: above what the device can give now it only does
  // not bind (yet).
  double applied = a.kind == derms::v1::CONTROL_KIND_GENERATION_LIMIT
                       ? target
                       : std::clamp(target, range.min_kw, range.max_kw);
  a.applied_kw = applied;
  if (applied != target) {
    Emit(Make(a.command_id, derms::v1::CLAMPED, applied,
              fmt::format("target_kw {:.3f} outside the device's range now [{:.3f}, {:.3f}] kW",
                          target, range.min_kw, range.max_kw),
              now_ms, index),
         out);
  } else {
    Emit(Make(a.command_id, derms::v1::APPLIED, applied, "", now_ms, index), out);
  }
}

ControlEngine::Responses ControlEngine::OnControl(const Control& control, int64_t now_ms,
                                                  PowerRange range) {
  Responses out;
  const std::string& id = control.command_id();
  if (id.empty() || id.size() > kMaxCommandIdLength) {
    out.push_back(Make(id, derms::v1::REJECTED, 0,
                       fmt::format("command_id must be 1 to {} characters", kMaxCommandIdLength),
                       now_ms));
    return out;
  }
  if (auto it = last_response_.find(id); it != last_response_.end()) {
    out.push_back(it->second);  // idempotent: the earlier answer, nothing applied again
    return out;
  }
  std::vector<Interval> intervals;
  size_t skipped = 0;
  if (auto error = Resolve(control, now_ms, &intervals, &skipped)) {
    Emit(Make(id, derms::v1::REJECTED, 0, *error, now_ms), &out);
    return out;
  }
  if (active_) {
    if (control.priority() < active_->priority) {
      Emit(Make(id, derms::v1::REJECTED, 0,
                fmt::format("priority {} is below control '{}' in force (priority {})",
                            control.priority(), active_->command_id, active_->priority),
                now_ms),
           &out);
      return out;
    }
    if (control.priority() == active_->priority && control.issued_at_ms() < active_->issued_at_ms) {
      Emit(Make(id, derms::v1::SUPERSEDED, 0,
                fmt::format("issued_at_ms {} is older than control '{}' in force ({})",
                            control.issued_at_ms(), active_->command_id, active_->issued_at_ms),
                now_ms),
           &out);
      return out;
    }
    Emit(Make(active_->command_id, derms::v1::SUPERSEDED, 0,
              fmt::format("superseded by control '{}'", id), now_ms),
         &out);
  }
  active_ = Active{id,   control.issued_at_ms(), control.priority(), control.kind(),
                   std::move(intervals), -1, 0};
  const auto& first = active_->intervals[skipped];
  if (first.start_ms <= now_ms) {
    StartInterval(static_cast<int>(skipped), now_ms, range, &out);
  } else {
    std::string reason = fmt::format("interval {} starts at {} ms", skipped, first.start_ms);
    if (skipped > 0) reason += fmt::format("; {} interval(s) already over were skipped", skipped);
    Emit(Make(id, derms::v1::RECEIVED, 0, reason, now_ms, static_cast<uint32_t>(skipped)), &out);
  }
  return out;
}

ControlEngine::Responses ControlEngine::Advance(int64_t now_ms, PowerRange range) {
  Responses out;
  if (!active_) return out;
  Active& a = *active_;
  if (now_ms >= a.intervals.back().end_ms) {
    Emit(Make(a.command_id, derms::v1::COMPLETED, a.applied_kw, "last interval ended", now_ms,
              static_cast<uint32_t>(a.intervals.size() - 1)),
         &out);
    active_.reset();
    return out;
  }
  int in_force = -1;
  for (size_t i = 0; i < a.intervals.size(); ++i) {
    if (a.intervals[i].start_ms <= now_ms && now_ms < a.intervals[i].end_ms) {
      in_force = static_cast<int>(i);
      break;
    }
  }
  if (in_force >= 0 && in_force != a.current) {
    StartInterval(in_force, now_ms, range, &out);
  } else if (in_force < 0) {
    a.current = -1;  // in a gap between intervals: default behaviour
  }
  return out;
}

ControlEngine::Responses ControlEngine::Cancel(int64_t now_ms, const std::string& reason) {
  Responses out;
  if (!active_) return out;
  Emit(Make(active_->command_id, derms::v1::CANCELLED, 0, reason, now_ms), &out);
  active_.reset();
  return out;
}

ControlEngine::Responses ControlEngine::Refuse(int64_t now_ms, const std::string& reason) {
  Responses out;
  if (!active_) return out;
  Emit(Make(active_->command_id, derms::v1::REJECTED, 0, reason, now_ms), &out);
  active_.reset();
  return out;
}

std::optional<double> ControlEngine::Setpoint() const {
  if (!active_ || active_->current < 0 || active_->kind != derms::v1::CONTROL_KIND_SETPOINT) {
    return std::nullopt;
  }
  return active_->applied_kw;
}

std::optional<double> ControlEngine::GenerationLimit() const {
  if (!active_ || active_->current < 0 ||
      active_->kind != derms::v1::CONTROL_KIND_GENERATION_LIMIT) {
    return std::nullopt;
  }
  return active_->applied_kw;
}

std::string ControlEngine::ActiveCommandId() const {
  return active_ ? active_->command_id : std::string();
}

}  // namespace derms::edge
