#include "cloud_aggregator/modules/dispatch/dispatch_module.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "cloud_aggregator/registry/validation.h"
#include "common/codec.h"
#include "common/topics.h"

namespace derms::aggregator {
namespace {

derms::v1::DispatchRunSummary Summarise(const storage::DispatchRunRecord& r,
                                        const workflow::RunResult& result) {
  derms::v1::DispatchRunSummary s;
  s.set_run_id(r.run_id);
  s.set_vder_id(r.vder_id);
  s.set_trigger(r.trigger);
  s.set_request_id(r.request_id);
  s.set_started_ms(r.started_ms);
  s.set_finished_ms(r.finished_ms);
  s.set_imbalance_kw(r.imbalance_kw);
  s.set_frequency_kw(r.frequency_kw);
  s.set_requested_kw(r.requested_kw);
  s.set_command_kw(r.command_kw);
  s.set_planned_kw(r.planned_kw);
  s.set_achieved_kw(r.achieved_kw);
  s.set_shortfall_kw(r.shortfall_kw);
  s.set_members_active(r.members_active);
  s.set_members_dispatched(result.members_dispatched);
  s.set_rounds(r.rounds);
  auto& outcomes = *s.mutable_outcomes();
  if (r.applied) outcomes["APPLIED"] = r.applied;
  if (r.clamped) outcomes["CLAMPED"] = r.clamped;
  if (r.failed) outcomes["FAILED"] = r.failed;
  if (r.no_answer) outcomes["NO_ANSWER"] = r.no_answer;
  s.set_reason(r.reason);
  s.set_outcome(r.outcome);
  return s;
}

// Within this of the target (kW), a utility's dispatch is achieved.
constexpr double kAchievedKw = 1e-3;

derms::v1::DispatchResult Refusal(const std::string& request_id, const std::string& vder_id,
                                  double target_kw, const std::string& reason, int64_t now_ms) {
  derms::v1::DispatchResult r;
  r.set_request_id(request_id);
  r.set_vder_id(vder_id);
  r.set_target_kw(target_kw);
  r.set_shortfall_kw(target_kw);
  r.set_outcome(derms::v1::DISPATCH_REFUSED);
  r.set_reason(reason);
  r.set_timestamp_ms(now_ms);
  return r;
}

}  // namespace

void DispatchOptions::Describe(config::OptionSet& set) {
  set.Flag("dispatch.enabled", &enabled,
           "answer grid/{substation}/status with setpoints (the dispatch workflow)");
  set.Int("dispatch.control_duration_s", &control_duration_s, 1, 86400,
          "how long each dispatched setpoint lasts (device seconds); the next grid status "
          "renews it")
      .Cli("--control-duration-s");
  set.Real("dispatch.setpoint_deadband_kw", &setpoint_deadband_kw, 0, 1e12,
           "a setpoint this close (kW) to the one a DER follows is not re-sent")
      .Cli("--setpoint-deadband-kw");
  set.Int("dispatch.response_timeout_ms", &response_timeout_ms, 10, 600000,
          "wall ms a run waits for answers before it moves shortfall to other members")
      .Cli("--response-timeout-ms");
  set.Int("dispatch.max_rounds", &max_rounds, 1, 10,
          "rounds of a run: the first allocation plus corrections");
  set.Real("dispatch.nominal_hz", &frequency.nominal_hz, 40, 70, "the grid's nominal frequency");
  set.Real("dispatch.droop_kw_per_hz", &frequency.droop_kw_per_hz, 0, 1e12,
           "stage 5's frequency term: kW of output per Hz below nominal");
  set.Real("dispatch.frequency_deadband_hz", &frequency.deadband_hz, 0, 5,
           "no frequency term within this many Hz of nominal");
}

DispatchModule::DispatchModule(const DispatchOptions& options, const ModulePorts& ports,
                               const FleetView& fleet, VderBoard& board, ControlChannel& controls,
                               controls::ControlLedger& ledger, controls::AvailabilityHolds& holds,
                               int64_t last_run_id)
    : options_(options),
      outbox_(ports.outbox),
      sink_(ports.sink),
      time_(ports.time),
      intake_(ports.intake),
      fleet_(fleet),
      board_(board),
      controls_(controls),
      ledger_(ledger),
      holds_(holds),
      runs_started_(ports.metrics.AddCounter("dispatch_runs", "dispatch runs started")),
      last_run_id_(last_run_id) {}

void DispatchModule::OnMessage(const Inbound& m, int64_t now_ms) {
  if (m.parsed.kind == topics::Kind::kGridStatus) return OnGridStatus(m, now_ms);
  if (m.parsed.kind == topics::Kind::kVderDispatch) return OnDispatchRequest(m, now_ms);
}

void DispatchModule::OnRefused(const Inbound& m, const Status& why, int64_t now_ms) {
  if (m.parsed.kind != topics::Kind::kVderDispatch) return;
  // The payload may still say which request it was.
  derms::v1::DispatchRequest req;
  if (!m.payload.empty()) {
    (void)codec::ParseOperator(m.payload, "", &req);
  }
  outbox_.Reply(m.reply_to, codec::ToOperatorJson(Refusal(req.request_id(), m.parsed.id,
                                                          req.target_kw(), why.message(), now_ms)));
}

void DispatchModule::AddJobs(Scheduler& scheduler) {
  // Every tick: a run's deadline is what bounds its answer time.
  scheduler.Every("dispatch.deadlines", 0, [this](int64_t now_ms) {
    CheckDeadlines(now_ms);
    for (auto it = windows_.begin(); it != windows_.end();) {
      it = it->second.end_ms <= now_ms ? windows_.erase(it) : std::next(it);
    }
  });
}

void DispatchModule::OnGridStatus(const Inbound& m, int64_t now_ms) {
  const std::string& substation_id = m.parsed.id;
  derms::v1::GridStatus g;
  Status s = codec::ParseOperator(
      m.payload, fmt::format("grid status for substation '{}'", substation_id), &g);
  if (s.ok()) s = registry::ValidateGridStatus(g, substation_id);
  if (!s.ok()) return intake_.Reject(s, m.topic);
  intake_.Accept();
  g.set_substation_id(substation_id);
  if (g.timestamp_ms() == 0) g.set_timestamp_ms(now_ms);
  sink_.Add(storage::GridStatusRecord{g, now_ms});
  int root = fleet_.vders().tree().ForGrid(substation_id);
  if (root < 0) {
    intake_.Warn("grid_without_vder",
                 fmt::format("grid status for substation '{}': no virtual DER is bound to "
                             "it and no DER was born there; nothing to dispatch",
                             substation_id));
    return;
  }
  board_.ShowGrid(root, g);
  if (!options_.enabled) return;
  // Stages 1, 4 and 5's frequency term; StartRun does the rest.
  storage::DispatchRunRecord record;
  record.trigger = "grid_status";
  record.substation_id = substation_id;
  record.has_grid = true;
  record.grid = g;
  record.imbalance_kw = workflow::NetImbalanceKw(g);
  record.frequency_kw = workflow::FrequencyTermKw(g.frequency_hz(), options_.frequency);
  StartRun(root, record.imbalance_kw + record.frequency_kw, std::move(record), substation_id, 0,
           options_.control_duration_s, now_ms, ActiveRun{});
}

void DispatchModule::OnDispatchRequest(const Inbound& m, int64_t now_ms) {
  const std::string& vder_id = m.parsed.id;
  derms::v1::DispatchRequest req;
  Status s =
      codec::ParseOperator(m.payload, fmt::format("dispatch request for vder '{}'", vder_id), &req);
  if (s.ok()) s = registry::ValidateDispatchRequest(req, vder_id, now_ms);
  if (!s.ok()) {
    intake_.Reject(s, m.topic);
    // Answered where the requester listens, when it said where.
    outbox_.Reply(m.reply_to, codec::ToOperatorJson(Refusal(req.request_id(), vder_id,
                                                            req.target_kw(), s.message(), now_ms)));
    return;
  }
  intake_.Accept();
  ActiveRun pending;
  pending.answer = true;
  pending.reply_to = m.reply_to;
  derms::v1::DispatchResult& result = pending.result;
  result.set_request_id(req.request_id());
  result.set_vder_id(vder_id);
  result.set_target_kw(req.target_kw());
  const vder::VderTree& tree = fleet_.vders().tree();
  int root = tree.Find(vder_id);
  std::string refused;
  if (root < 0) {
    refused = fmt::format(
        "unknown virtual DER '{}': not configured, and no DER was born at a "
        "substation of that id",
        vder_id);
  } else if (!tree.definition(root).dispatchable) {
    refused = fmt::format("virtual DER '{}' is a view (dispatchable = false)", vder_id);
  } else if (!options_.enabled) {
    refused = "dispatch is disabled on this aggregator ([dispatch] enabled = false)";
  }
  if (!refused.empty()) {
    return Answer(Refusal(req.request_id(), vder_id, req.target_kw(), refused, now_ms),
                  pending.reply_to);
  }
  storage::DispatchRunRecord record;
  record.trigger = "dispatch_request";
  record.request_id = req.request_id();
  StartRun(root, req.target_kw(), std::move(record), "", req.start_ms(), req.duration_s(), now_ms,
           std::move(pending));
}

std::vector<workflow::ActiveMember> DispatchModule::ActiveMembers(
    int root, const std::string& substation_id, int64_t duration_s, int64_t now_ms, bool grid_run,
    double* held_kw, size_t* held) const {
  const vder::VderFleet& vders = fleet_.vders();
  const vder::VderTree& tree = vders.tree();
  std::vector<workflow::ActiveMember> members;
  auto dispatchable = [&tree](int v) { return tree.definition(v).dispatchable; };
  vders.ForEachMember(root, dispatchable, [&](int v, const std::string& der_id) {
    const registry::DerState* der = fleet_.Find(der_id);
    if (der == nullptr || !fleet_.IsActive(*der, now_ms)) return true;
    if (!substation_id.empty() && der->birth.substation_id() != substation_id) return true;
    // A utility's window outranks a grid run; an owner's schedule
    // outranks both. A later utility request may take over a window.
    if (holds_.Find(der_id, now_ms, grid_run ? std::string() : std::string(kHolder))) {
      if (grid_run && holds_.FindBy(der_id, kHolder, now_ms) != nullptr) {
        const controls::InForce* f = ledger_.InForceFor(der_id, now_ms);
        *held_kw += f != nullptr ? f->kw
                                 : dispatch::DerMember(der->birth, der->last,
                                                       static_cast<double>(duration_s), 0)
                                       .baseline_kw;
        ++*held;
      }
      return true;
    }
    members.push_back({der_id, v, der->birth.der_type(),
                       dispatch::DerMember(der->birth, der->last, static_cast<double>(duration_s),
                                           fleet_.costs().CostOf(der->birth))});
    return true;
  });
  // One order for every run over the same members: the allocation is
  // deterministic in it.
  std::sort(members.begin(), members.end(),
            [](const auto& a, const auto& b) { return a.der_id < b.der_id; });
  return members;
}

void DispatchModule::StartRun(int root, double requested_kw, storage::DispatchRunRecord record,
                              const std::string& substation_id, int64_t start_ms,
                              int64_t duration_s, int64_t now_ms, ActiveRun pending) {
  const vder::VderTree& tree = fleet_.vders().tree();
  const bool grid_run = record.trigger == "grid_status";
  const int64_t run_id = ++last_run_id_;
  // A newer run over any of the same DERs supersedes the older one, except
  // that a grid run never supersedes a utility's: it leaves the utility's
  // DERs alone instead.
  std::vector<int64_t> overlapping;
  for (const auto& [id, r] : runs_) {
    if (grid_run && r.answer) continue;
    if (tree.IsWithin(r.root, root) || tree.IsWithin(root, r.root)) overlapping.push_back(id);
  }
  for (int64_t id : overlapping) {
    runs_[id].superseded_by_run_id = run_id;
    runs_[id].superseded_by_request_id = record.request_id;
    FinishRun(id, "superseded", now_ms);
  }

  double held_kw = 0;
  size_t held = 0;
  auto members =
      ActiveMembers(root, substation_id, duration_s, now_ms, grid_run, &held_kw, &held);  // 2
  if (held > 0) {
    // What the held DERs put out covers part of the imbalance already.
    pending.note = fmt::format(
        "{} DERs held by a utility's dispatch window left out ({:.1f} kW of their output "
        "counted against the imbalance)",
        held, held_kw);
    requested_kw -= held_kw;
  }
  workflow::Capacity capacity = workflow::TotalCapacity(members);                  // stage 3
  workflow::Command command = workflow::DischargeCommand(requested_kw, capacity);  // stage 5
  runs_started_.Add();
  if (!grid_run) {
    // The window: the run's members are held for it, and it supersedes the
    // windows of earlier requests over the same DERs.
    std::vector<std::string> der_ids;
    for (const auto& m : members) der_ids.push_back(m.der_id);
    SupersedeWindows(root, der_ids, run_id, record.request_id, now_ms);
    Window& w = windows_[run_id];
    w.vder_id = tree.definition(root).id;
    w.start_ms = start_ms > 0 ? start_ms : now_ms;
    w.end_ms = w.start_ms + duration_s * 1000;
    w.reply_to = pending.reply_to;
    for (const std::string& der_id : der_ids) {
      holds_.Place(der_id, controls::Hold{kHolder, w.end_ms,
                                          fmt::format("utility dispatch '{}' on '{}' (run {})",
                                                      record.request_id, w.vder_id, run_id)});
    }
    w.der_ids = std::move(der_ids);
    pending.result.set_window_start_ms(w.start_ms);
    pending.result.set_window_end_ms(w.end_ms);
  }
  record.run_id = run_id;
  record.vder_id = tree.definition(root).id;
  record.policy = std::string(dispatch::PolicyName(tree.definition(root).policy));
  record.started_ms = now_ms;
  record.duration_s = duration_s;
  record.members_active = static_cast<uint32_t>(members.size());
  record.baseline_kw = capacity.baseline_kw;
  record.min_kw = capacity.min_kw;
  record.max_kw = capacity.max_kw;
  record.battery_max_discharge_kw = capacity.battery_max_discharge_kw;
  record.requested_kw = command.requested_kw;
  record.command_kw = command.command_kw;

  ActiveRun& run = runs_[run_id] = std::move(pending);
  run.record = std::move(record);
  run.root = root;
  run.start_ms = start_ms;
  run.duration_s = duration_s;
  for (size_t i = 0; i < members.size(); ++i) run.member_index[members[i].der_id] = i;
  run.run =
      std::make_unique<workflow::DispatchRun>(tree, root, command.command_kw, std::move(members),
                                              duration_s, static_cast<int>(options_.max_rounds));
  // What DERs already follow: kept rather than re-sent when close enough
  // and lasting long enough, and what a DER that refuses its new setpoint
  // goes on doing. A grid run is renewed by the next grid status, so a
  // setpoint with half its time left will do; a utility's dispatch asks for
  // its whole window.
  int64_t keep_until_ms = grid_run ? now_ms + duration_s * 1000 / 2 : now_ms + duration_s * 1000;
  std::vector<workflow::InForceSetpoint> in_force(run.run->members().size());
  for (size_t i = 0; i < in_force.size(); ++i) {
    const controls::InForce* f = ledger_.InForceFor(run.run->members()[i].active.der_id, now_ms);
    if (f == nullptr) continue;
    bool keepable = start_ms == 0 && f->applied && f->ends_ms > keep_until_ms;
    in_force[i] = {f->kw, f->command_id, keepable};
  }
  run.defaulted.assign(in_force.size(), false);
  SendRound(run, run.run->Begin(in_force, options_.setpoint_deadband_kw), now_ms);  // stage 6
  ReleaseUnneeded(run, now_ms);
  if (!run.run->Waiting()) Advance(run_id, now_ms);
}

void DispatchModule::SendRound(ActiveRun& run, const std::vector<size_t>& members, int64_t now_ms) {
  const int64_t run_id = run.record.run_id;
  for (size_t i : members) {
    const workflow::RunMember& m = run.run->members()[i];
    const std::string& der_id = m.active.der_id;
    derms::v1::Control c;
    c.set_command_id(fmt::format("r{}-{}-{}", run_id, run.run->round(), der_id));
    c.set_issued_at_ms(now_ms);
    c.set_der_id(der_id);
    auto* iv = c.add_intervals();
    iv->set_start_ms(run.start_ms);
    iv->set_duration_s(static_cast<uint32_t>(run.duration_s));
    iv->set_target_kw(m.target_kw);
    int64_t begins_ms = run.start_ms > 0 ? run.start_ms : now_ms;
    ledger_.Sent(controls::SentControl{c.command_id(), der_id, run_id, i, m.target_kw, begins_ms,
                                       begins_ms + run.duration_s * 1000});
    run.run->Sent(i, c.command_id());
    controls_.SendControl(std::move(c), der_id, run_id);
  }
  run.deadline_mono_ms = time_.MonotonicMs() + options_.response_timeout_ms;
}

void DispatchModule::ReleaseUnneeded(const ActiveRun& run, int64_t now_ms) {
  // DERs in this run's reach still following one of our setpoints that this
  // run does not need go back to their default now, not when it ends;
  // except those a utility's window holds, which a grid run leaves alone.
  const vder::VderFleet& vders = fleet_.vders();
  const vder::VderTree& tree = vders.tree();
  const std::string& substation_id = run.record.substation_id;
  const std::string except = run.answer ? std::string(kHolder) : std::string();
  for (const std::string& der_id : ledger_.DersInForce()) {
    if (holds_.Find(der_id, now_ms, except) != nullptr) continue;
    const controls::InForce* in_force = ledger_.InForceFor(der_id, INT64_MIN);
    int claimant = vders.claimant(der_id);
    bool in_reach = in_force != nullptr && in_force->run_id != run.record.run_id && claimant >= 0 &&
                    tree.IsWithin(claimant, run.root);
    if (in_reach && !substation_id.empty()) {
      const registry::DerState* der = fleet_.Find(der_id);
      in_reach = der != nullptr && der->birth.substation_id() == substation_id;
    }
    auto member = run.member_index.find(der_id);
    bool needed = member != run.member_index.end() &&
                  run.run->members()[member->second].state != workflow::MemberState::kUncontrolled;
    if (in_reach && !needed) {
      controls_.SendCommand(der_id, derms::v1::RETURN_TO_DEFAULT,
                            fmt::format("not needed by dispatch run {}", run.record.run_id),
                            now_ms);
      ledger_.Release(der_id);
    }
  }
}

void DispatchModule::Advance(int64_t run_id, int64_t now_ms) {
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  ActiveRun& run = it->second;
  auto more = run.run->Correct();
  // Members silent past the deadline are told to return to their default,
  // so the baseline the correction assumed for them is what they do.
  for (size_t i = 0; i < run.run->members().size(); ++i) {
    const workflow::RunMember& m = run.run->members()[i];
    if (m.state != workflow::MemberState::kNoAnswer || run.defaulted[i]) continue;
    run.defaulted[i] = true;
    ledger_.Release(m.active.der_id);  // a late APPLIED to it no longer holds
    controls_.SendCommand(m.active.der_id, derms::v1::RETURN_TO_DEFAULT,
                          fmt::format("no answer to '{}' in time", m.command_id), now_ms);
  }
  if (more.empty()) return FinishRun(run_id, "completed", now_ms);
  SendRound(run, more, now_ms);
  if (!run.run->Waiting()) Advance(run_id, now_ms);
}

void DispatchModule::OnControlResponse(const std::string& der_id,
                                       const derms::v1::ControlResponse& r, int64_t now_ms) {
  const controls::SentControl* sent = ledger_.Find(r.command_id());
  if (sent == nullptr || sent->der_id != der_id) return;
  auto run = runs_.find(sent->run_id);
  if (run == runs_.end()) return;
  run->second.run->OnResponse(sent->member, r.command_id(), r.status(), r.applied_kw(), r.reason());
  if (!run->second.run->Waiting()) Advance(sent->run_id, now_ms);
}

void DispatchModule::CheckDeadlines(int64_t now_ms) {
  if (runs_.empty()) return;
  const int64_t mono_ms = time_.MonotonicMs();
  std::vector<int64_t> due;
  for (const auto& [id, run] : runs_) {
    if (mono_ms >= run.deadline_mono_ms) due.push_back(id);
  }
  for (int64_t id : due) Advance(id, now_ms);
}

void DispatchModule::FinishAll(const std::string& outcome, int64_t now_ms) {
  while (!runs_.empty()) FinishRun(runs_.begin()->first, outcome, now_ms);
}

void DispatchModule::FinishRun(int64_t run_id, const std::string& outcome, int64_t now_ms) {
  auto node = runs_.extract(run_id);
  if (node.empty()) return;
  ActiveRun& run = node.mapped();
  const vder::VderTree& tree = fleet_.vders().tree();
  workflow::RunResult result = run.run->Result();
  storage::DispatchRunRecord& r = run.record;
  r.outcome = outcome;
  r.finished_ms = now_ms;
  r.planned_kw = result.planned_kw;
  r.achieved_kw = result.achieved_kw;
  // Against what was asked, not what capacity allowed: the deficit (+) or
  // surplus (-) left after the DERs.
  r.shortfall_kw = r.requested_kw - result.achieved_kw;
  r.rounds = result.rounds;
  r.applied = result.applied;
  r.clamped = result.clamped;
  r.failed = result.failed;
  r.no_answer = result.no_answer;
  std::vector<std::string> why;
  if (std::abs(r.requested_kw - r.command_kw) > 1e-6) {
    why.push_back(fmt::format("{} active members can hold {:.1f} to {:.1f} kW over {} s",
                              r.members_active, r.min_kw, r.max_kw, r.duration_s));
  }
  if (!run.note.empty()) why.push_back(run.note);
  if (!result.reason.empty()) why.push_back(result.reason);
  size_t unanswered = 0;
  for (const auto& m : run.run->members()) {
    if (m.state == workflow::MemberState::kSent || m.state == workflow::MemberState::kToSend) {
      ++unanswered;
    }
  }
  if (outcome != "completed") {
    std::string by =
        run.superseded_by_run_id == 0
            ? std::string()
            : fmt::format(" by run {}{}", run.superseded_by_run_id,
                          run.superseded_by_request_id.empty()
                              ? std::string(" (grid status)")
                              : fmt::format(" (request '{}')", run.superseded_by_request_id));
    why.push_back(unanswered == 0
                      ? fmt::format("run {}{}", outcome, by)
                      : fmt::format("run {}{} before all answers: {} members not yet answered are "
                                    "counted at what they did before",
                                    outcome, by, unanswered));
  }
  r.reason = fmt::format("{}", fmt::join(why, "; "));

  for (size_t i = 0; i < run.run->members().size(); ++i) {
    const workflow::RunMember& m = run.run->members()[i];
    if (m.state == workflow::MemberState::kUncontrolled) continue;
    const dispatch::Member& in = m.active.member;
    r.allocations.push_back(storage::AllocationRow{
        m.active.der_id, tree.definition(m.active.vder).id, m.round, in.baseline_kw, in.min_kw,
        in.max_kw, in.soc_pct, in.cost, m.target_kw,
        m.state == workflow::MemberState::kApplied ? m.target_kw : m.applied_kw,
        workflow::MemberStateName(m.state), m.command_id, m.reason});
  }
  // Every virtual DER the run reached shows its share and the run.
  derms::v1::DispatchRunSummary summary = Summarise(r, result);
  const auto& shares = run.run->allocation().vder_target_kw;
  for (size_t v = 0; v < tree.size() && v < shares.size(); ++v) {
    if (!tree.IsWithin(static_cast<int>(v), run.root)) continue;
    if (!tree.definition(static_cast<int>(v)).dispatchable) continue;
    board_.ShowRun(static_cast<int>(v), shares[v], summary);
  }
  spdlog::info(
      "dispatch run {} on '{}' ({}{}): requested {:.1f} kW, command {:.1f}, achieved {:.1f}, "
      "shortfall {:.1f}; {} active, {} applied, {} clamped, {} failed, {} silent, {} round(s){}",
      run_id, r.vder_id, r.trigger, outcome == "completed" ? "" : ", " + outcome, r.requested_kw,
      r.command_kw, r.achieved_kw, r.shortfall_kw, r.members_active, r.applied, r.clamped, r.failed,
      r.no_answer, r.rounds, r.reason.empty() ? "" : "; " + r.reason);
  if (run.answer) {
    derms::v1::DispatchResult& answer = run.result;
    answer.set_run_id(run_id);
    answer.set_command_kw(r.command_kw);
    answer.set_planned_kw(r.planned_kw);
    answer.set_members_active(r.members_active);
    answer.set_allocated_kw(r.achieved_kw);
    answer.set_shortfall_kw(answer.target_kw() - r.achieved_kw);
    answer.set_members_dispatched(result.members_dispatched);
    answer.set_reason(r.reason);
    answer.set_timestamp_ms(now_ms);
    if (outcome == "completed") {
      answer.set_outcome(std::abs(answer.shortfall_kw()) <= kAchievedKw
                             ? derms::v1::DISPATCH_COMPLETED
                             : derms::v1::DISPATCH_PARTIAL);
    } else if (outcome == "superseded") {
      answer.set_outcome(derms::v1::DISPATCH_SUPERSEDED);
      answer.set_superseded_by_run_id(run.superseded_by_run_id);
      answer.set_superseded_by_request_id(run.superseded_by_request_id);
    } else {
      answer.set_outcome(derms::v1::DISPATCH_INTERRUPTED);
    }
    Answer(answer, run.reply_to);
    auto window = windows_.find(run_id);
    if (window != windows_.end()) {
      if (outcome == "superseded") {
        EndWindow(run_id);
      } else {
        window->second.answered = true;
        window->second.result = answer;
      }
    }
  }
  sink_.Add(std::move(r));
}

void DispatchModule::SupersedeWindows(int root, const std::vector<std::string>& der_ids,
                                      int64_t by_run_id, const std::string& by_request_id,
                                      int64_t now_ms) {
  const vder::VderTree& tree = fleet_.vders().tree();
  std::vector<int64_t> ended;
  for (const auto& [id, w] : windows_) {
    if (id == by_run_id) continue;
    int other = tree.Find(w.vder_id);
    bool overlaps = other >= 0 && (tree.IsWithin(other, root) || tree.IsWithin(root, other));
    for (size_t i = 0; !overlaps && i < w.der_ids.size(); ++i) {
      overlaps = std::find(der_ids.begin(), der_ids.end(), w.der_ids[i]) != der_ids.end();
    }
    if (overlaps) ended.push_back(id);
  }
  for (int64_t id : ended) {
    Window& w = windows_[id];
    // A window whose run is still waiting is told by FinishRun; one already
    // answered is told now that its window is cut short.
    if (w.answered) {
      derms::v1::DispatchResult told = w.result;
      told.set_outcome(derms::v1::DISPATCH_SUPERSEDED);
      told.set_superseded_by_run_id(by_run_id);
      told.set_superseded_by_request_id(by_request_id);
      told.set_reason(fmt::format(
          "window superseded by request '{}' (run {}) with {:.0f} s of it left; what it "
          "achieved: {}",
          by_request_id, by_run_id, static_cast<double>(w.end_ms - now_ms) / 1000.0,
          w.result.reason().empty() ? "the target" : w.result.reason()));
      told.set_timestamp_ms(now_ms);
      Answer(told, w.reply_to);
    }
    EndWindow(id);
  }
}

void DispatchModule::EndWindow(int64_t run_id) {
  auto it = windows_.find(run_id);
  if (it == windows_.end()) return;
  for (const std::string& der_id : it->second.der_ids) holds_.Release(der_id, kHolder);
  windows_.erase(it);
}

void DispatchModule::Answer(const derms::v1::DispatchResult& result, const ReplyTo& reply_to) {
  std::string json = codec::ToOperatorJson(result);
  outbox_.Publish(topics::VderDispatchResult(result.vder_id()), json);
  outbox_.Reply(reply_to, json);
}

}  // namespace derms::aggregator
