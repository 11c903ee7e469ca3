#include "cloud_aggregator/modules/curtailment/curtailment_module.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "feeder/curtailment_plan.h"
#include "cloud_aggregator/registry/validation.h"
#include "common/codec.h"
#include "common/feeder_node.h"

namespace derms::aggregator {
namespace {

using derms::v1::CurtailResult;

constexpr char kRunsTable[] = "curtailment_runs";
constexpr char kMembersTable[] = "curtailment_members";
constexpr char kVoltagesTable[] = "curtailment_voltages";

// A ratio this small is no curtailment (the LP's tolerance).
constexpr double kNoCurtailment = 1e-6;
// Curtailment reaches a virtual DER's PVs at any depth, dispatchable or not.
constexpr auto kWholeTree = [](int) { return true; };

Status ValidateRequest(const derms::v1::CurtailRequest& r, const std::string& vder_id) {
  auto fail = [&](const std::string& rule) {
    return Status::Error("invalid_field",
                         fmt::format("curtail request for vder '{}': {}", vder_id, rule));
  };
  if (!r.request_id().empty() && !topics::IsValidId(r.request_id())) {
    return fail(fmt::format("request_id '{}' does not match [A-Za-z0-9_-]{{1,64}}",
                            r.request_id().substr(0, 80)));
  }
  if (!r.policy().empty() && !feeder::ParsePolicy(r.policy()).ok()) {
    return fail(fmt::format("policy '{}' is not one of equal_ratio, per_area, equal_kw, min_total",
                            r.policy().substr(0, 80)));
  }
  if (r.v_max_pu() != 0 && !(r.v_max_pu() >= 1.0 && r.v_max_pu() <= 1.2)) {
    return fail(fmt::format("v_max_pu {} outside [1, 1.2] (0: the scenario's)", r.v_max_pu()));
  }
  if (r.duration_s() > 86400) {
    return fail(fmt::format("duration_s {} above 86400 (0: the configured)", r.duration_s()));
  }
  return Status::Ok();
}

CurtailResult Refusal(const derms::v1::CurtailRequest& req, const std::string& vder_id,
                      const std::string& reason, int64_t now_ms) {
  CurtailResult r;
  r.set_request_id(req.request_id());
  r.set_vder_id(vder_id);
  r.set_trigger("request");
  r.set_outcome(derms::v1::CURTAIL_REFUSED);
  r.set_policy(req.policy());
  r.set_reason(reason);
  r.set_timestamp_ms(now_ms);
  return r;
}

}  // namespace

void CurtailmentOptions::Describe(config::OptionSet& set) {
  using Rule = config::OptionSet::TextRule;
  set.Text("curtailment.scenario", &scenario, Rule::kAny,
           "feeder scenario file (feeder/scenarios/*.toml): the OpenDSS feeder, its operating "
           "point and voltage limits; empty: no feeder curtailment");
  set.Text("curtailment.vder_id", &vder_id, Rule::kId,
           "the virtual DER whose PVs the schedule and the voltage watch curtail");
  set.Text("curtailment.policy", &policy, Rule::kRequired,
           "fairness: equal_ratio, per_area, equal_kw or min_total (a request may choose)");
  set.Int("curtailment.every_s", &every_s, 0, 86400,
          "a curtailment run this often (wall seconds) for vder_id; 0: none");
  set.Real("curtailment.trigger_voltage_pu", &trigger_voltage_pu, 0, 2,
           "a PV of vder_id reporting voltage_v above this times nominal_v, or a grid status "
           "of the substation vder_id names reporting voltage_pu above it, starts a run; 0: off");
  set.Real("curtailment.nominal_v", &nominal_v, 1, 1e6, "the PVs' nominal voltage (V)");
  set.Int("curtailment.min_interval_s", &min_interval_s, 0, 86400,
          "least wall seconds between two runs the voltage watch starts");
  set.Int("curtailment.control_duration_s", &control_duration_s, 1, 86400,
          "how long a generation limit lasts (device seconds); the next run renews it");
  set.Int("curtailment.response_timeout_ms", &response_timeout_ms, 10, 600000,
          "wall ms a run waits for its PVs' answers");
}

StatusOr<std::unique_ptr<CurtailmentModule>> CurtailmentModule::Create(
    const CurtailmentOptions& options, const ModulePorts& ports, const FleetView& fleet,
    ControlChannel& controls, controls::AvailabilityHolds& holds) {
  if (!feeder::ParsePolicy(options.policy).ok()) {
    return Status::Error("invalid_value",
                         fmt::format("curtailment.policy '{}' is not one of equal_ratio, "
                                     "per_area, equal_kw, min_total",
                                     options.policy));
  }
  std::unique_ptr<feeder::Scenario> scenario;
  std::unique_ptr<feeder::FeederModel> model;
  std::vector<double> load_shape;
  if (!options.scenario.empty()) {
    auto loaded = feeder::LoadScenario(options.scenario);
    if (!loaded.ok()) return loaded.status();
    auto feeder = feeder::LoadScenarioFeeder(*loaded);
    if (!feeder.ok()) return feeder.status();
    if (!loaded->load_shape.empty()) {
      auto shape = feeder::ReadShape(loaded->load_shape);
      if (!shape.ok()) return shape.status();
      load_shape = std::move(shape).value();
    }
    scenario = std::make_unique<feeder::Scenario>(std::move(loaded).value());
    model = std::make_unique<feeder::FeederModel>(std::move(feeder).value());
  }
  return std::unique_ptr<CurtailmentModule>(
      new CurtailmentModule(options, ports, fleet, controls, holds, std::move(scenario),
                            std::move(model), std::move(load_shape)));
}

CurtailmentModule::CurtailmentModule(const CurtailmentOptions& options, const ModulePorts& ports,
                                     const FleetView& fleet, ControlChannel& controls,
                                     controls::AvailabilityHolds& holds,
                                     std::unique_ptr<feeder::Scenario> scenario,
                                     std::unique_ptr<feeder::FeederModel> model,
                                     std::vector<double> load_shape)
    : options_(options),
      outbox_(ports.outbox),
      sink_(ports.sink),
      time_(ports.time),
      intake_(ports.intake),
      fleet_(fleet),
      controls_(controls),
      holds_(holds),
      runs_started_(ports.metrics.AddCounter("curtailment_runs", "feeder curtailment runs")),
      pvs_curtailed_(ports.metrics.AddCounter("curtailment_caps_sent",
                                              "generation limits sent to PVs")),
      scenario_(std::move(scenario)),
      feeder_(std::move(model)),
      load_shape_(std::move(load_shape)) {
}

std::vector<std::string> CurtailmentModule::Tables() const {
  return {
      fmt::format(
          "CREATE TABLE IF NOT EXISTS {} (run_id INTEGER PRIMARY KEY, vder_id TEXT NOT NULL, "
          "request_id TEXT, trigger TEXT NOT NULL, policy TEXT, outcome TEXT NOT NULL, "
          "started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL, load_mult REAL, "
          "pvs INTEGER, available_kw REAL, curtailed_kw REAL, max_ratio REAL, min_ratio REAL, "
          "jain_index REAL, iterations INTEGER, v_max_before_pu REAL, v_max_after_pu REAL, "
          "v_min_after_pu REAL, reason TEXT)",
          kRunsTable),
      fmt::format("CREATE TABLE IF NOT EXISTS {} (run_id INTEGER NOT NULL, der_id TEXT NOT NULL, "
                  "feeder_node TEXT, available_kw REAL, ratio REAL, cap_kw REAL, command_id TEXT, "
                  "status TEXT, applied_kw REAL, reason TEXT, PRIMARY KEY (run_id, der_id))",
                  kMembersTable),
      fmt::format("CREATE TABLE IF NOT EXISTS {} (run_id INTEGER NOT NULL, bus TEXT NOT NULL, "
                  "phase INTEGER NOT NULL, distance_kft REAL, before_pu REAL, after_pu REAL, "
                  "PRIMARY KEY (run_id, bus, phase))",
                  kVoltagesTable),
  };
}

void CurtailmentModule::AddJobs(Scheduler& scheduler) {
  scheduler.Every("curtailment.deadlines", 0,
                  [this](int64_t now_ms) { CheckDeadlines(now_ms); });
  if (options_.every_s > 0 && !options_.vder_id.empty()) {
    scheduler.Every("curtailment.schedule", options_.every_s * 1000, [this](int64_t now_ms) {
      StartRun(options_.vder_id, "schedule", {}, ReplyTo{}, now_ms);
    });
  }
  if (options_.trigger_voltage_pu > 0 && !options_.vder_id.empty()) {
    scheduler.Every("curtailment.voltage_watch", 1000,
                    [this](int64_t now_ms) { WatchVoltages(now_ms); });
  }
}

void CurtailmentModule::OnMessage(const Inbound& m, int64_t now_ms) {
  const std::string& vder_id = m.parsed.id;
  derms::v1::CurtailRequest req;
  Status s =
      codec::ParseOperator(m.payload, fmt::format("curtail request for vder '{}'", vder_id), &req);
  if (s.ok()) s = ValidateRequest(req, vder_id);
  if (!s.ok()) {
    intake_.Reject(s, m.topic);
    Answer(Refusal(req, vder_id, s.message(), now_ms), m.reply_to);
    return;
  }
  intake_.Accept();
  StartRun(vder_id, "request", req, m.reply_to, now_ms);
}

void CurtailmentModule::OnRefused(const Inbound& m, const Status& why, int64_t now_ms) {
  if (m.parsed.kind != topics::Kind::kVderCurtail) return;
  derms::v1::CurtailRequest req;
  if (!m.payload.empty()) (void)codec::ParseOperator(m.payload, "", &req);
  Answer(Refusal(req, m.parsed.id, why.message(), now_ms), m.reply_to);
}

double CurtailmentModule::LoadMultAt(int64_t now_ms) const {
  if (load_shape_.empty()) return scenario_->load_mult;
  const int64_t step_ms = static_cast<int64_t>(scenario_->step_h * 3600'000);
  const int64_t day_ms = 86400'000;
  size_t step = static_cast<size_t>(((now_ms % day_ms) + day_ms) % day_ms / std::max<int64_t>(1, step_ms));
  return scenario_->load_mult * load_shape_[std::min(step, load_shape_.size() - 1)];
}

void CurtailmentModule::StartRun(const std::string& vder_id, const std::string& trigger,
                                 const derms::v1::CurtailRequest& request,
                                 const ReplyTo& reply_to, int64_t now_ms) {
  const std::string& policy_name = request.policy().empty() ? options_.policy : request.policy();
  std::string refused;
  const vder::VderTree& tree = fleet_.vders().tree();
  int root = tree.Find(vder_id);
  if (!scenario_) {
    refused = "feeder curtailment is not configured on this aggregator ([curtailment] scenario)";
  } else if (root < 0) {
    refused = fmt::format("unknown virtual DER '{}'", vder_id);
  }
  if (!refused.empty()) {
    CurtailResult r = Refusal(request, vder_id, refused, now_ms);
    r.set_trigger(trigger);
    Answer(r, reply_to);
    return;
  }
  // A run still waiting for answers over the same virtual DER ends as it stands.
  if (runs_.count(vder_id) != 0) Finish(vder_id, "a later run started", now_ms);

  Run run;
  run.reply_to = reply_to;
  CurtailResult& result = run.result;
  last_run_id_ = std::max(last_run_id_ + 1, now_ms);
  result.set_run_id(last_run_id_);
  result.set_request_id(request.request_id());
  result.set_vder_id(vder_id);
  result.set_trigger(trigger);
  result.set_policy(policy_name);
  result.set_timestamp_ms(now_ms);
  runs_started_.Add();

  // The PVs: active members of the virtual DER (any depth) that say where
  // they connect on this feeder.
  std::set<std::string> der_ids;
  fleet_.vders().ForEachMember(root, kWholeTree, [&der_ids](int, const std::string& der_id) {
    der_ids.insert(der_id);
    return true;
  });
  std::vector<feeder::PvAgent> agents;
  std::string notes;
  for (const std::string& der_id : der_ids) {
    const registry::DerState* der = fleet_.Find(der_id);
    if (der == nullptr || der->birth.der_type() != derms::v1::PV ||
        der->birth.feeder_node().empty() || !fleet_.IsActive(*der, now_ms)) {
      continue;
    }
    auto node = ParseFeederNode("feeder_node", der->birth.feeder_node());
    if (!node.ok()) continue;  // births are validated on arrival
    int bus = feeder_->FindBus(node->bus);
    if (bus < 0 || !feeder_->buses[bus].phases[node->phase - 1]) {
      notes += fmt::format("; left out '{}': node {} is not on the feeder", der_id,
                           node->ToString());
      continue;
    }
    const double rated = der->birth.max_discharge_kw();
    const double available = std::clamp(der->last.available_discharge_kw(), 0.0, rated);
    agents.push_back({der_id, node->bus, node->phase, rated, available, ""});
  }
  if (agents.empty()) {
    result.set_outcome(derms::v1::CURTAIL_REFUSED);
    result.set_reason(fmt::format(
        "no active PV of virtual DER '{}' says where it connects on the feeder (feeder_node){}",
        vder_id, notes));
    runs_[vder_id] = std::move(run);
    return Finish(vder_id, "", now_ms);
  }

  feeder::PlanOptions plan_options;
  plan_options.policy = *feeder::ParsePolicy(policy_name);
  plan_options.v_min_pu = scenario_->v_min_pu;
  plan_options.v_max_pu = request.v_max_pu() > 0 ? request.v_max_pu() : scenario_->v_max_pu;
  plan_options.load_mult = LoadMultAt(now_ms);
  plan_options.source_pu = scenario_->source_pu;
  result.set_load_mult(plan_options.load_mult);
  auto planned = feeder::PlanCurtailment(*feeder_, agents, plan_options);
  if (!planned.ok() || !planned->feasible) {
    // Nothing is sent that the power flow says breaks the limits.
    result.set_outcome(derms::v1::CURTAIL_INFEASIBLE);
    result.set_reason((planned.ok() ? planned->reason : planned.status().message()) + notes);
    if (planned.ok()) {
      result.set_available_kw(planned->available_kw);
      result.set_v_max_before_pu(planned->max_before_pu);
    }
    spdlog::warn("curtailment run {} over '{}': {}", result.run_id(), vder_id, result.reason());
    runs_[vder_id] = std::move(run);
    return Finish(vder_id, "", now_ms);
  }
  const feeder::CurtailmentPlan& plan = *planned;
  result.set_available_kw(plan.available_kw);
  result.set_curtailed_kw(plan.curtailed_kw);
  result.set_max_ratio(plan.max_ratio);
  result.set_min_ratio(plan.min_ratio);
  result.set_jain_index(plan.jain_index);
  result.set_iterations(static_cast<uint32_t>(plan.iterations));
  result.set_v_max_before_pu(plan.max_before_pu);
  result.set_v_max_after_pu(plan.max_after_pu);
  double v_min_after = plan.voltages.empty() ? 0 : plan.voltages.front().after_pu;
  for (const feeder::BusPhaseVoltage& v : plan.voltages) {
    v_min_after = std::min(v_min_after, v.after_pu);
    int bus = feeder_->FindBus(v.bus);
    run.voltages.push_back({v.bus, v.phase, v.before_pu, v.after_pu,
                            bus >= 0 ? feeder_->buses[bus].distance_kft : 0.0});
  }
  result.set_v_min_after_pu(v_min_after);

  const int64_t duration_s = request.duration_s() > 0 ? request.duration_s()
                                                      : options_.control_duration_s;
  std::set<std::string>& curtailed = curtailed_[vder_id];
  std::set<std::string> still_curtailed;
  for (const feeder::PvCap& cap : plan.caps) {
    auto* member = result.add_members();
    member->set_der_id(cap.der_id);
    member->set_feeder_node(fmt::format("{}.{}", cap.bus, cap.phase));
    member->set_available_kw(cap.available_kw);
    member->set_ratio(cap.ratio);
    member->set_cap_kw(cap.cap_kw);
    if (cap.ratio <= kNoCurtailment) {
      member->set_status(derms::v1::CONTROL_STATUS_UNSPECIFIED);
      member->set_reason("not curtailed");
      continue;
    }
    derms::v1::Control c;
    c.set_command_id(fmt::format("curtail-{}-{}", result.run_id(), cap.der_id));
    c.set_issued_at_ms(now_ms);
    c.set_der_id(cap.der_id);
    c.set_kind(derms::v1::CONTROL_KIND_GENERATION_LIMIT);
    auto* iv = c.add_intervals();
    iv->set_duration_s(static_cast<uint32_t>(duration_s));
    iv->set_target_kw(cap.cap_kw);
    member->set_command_id(c.command_id());
    member->set_status(derms::v1::CONTROL_STATUS_UNSPECIFIED);
    member->set_reason("no answer");
    run.member_by_command[c.command_id()] = static_cast<size_t>(result.members_size() - 1);
    ++run.waiting;
    holds_.Place(cap.der_id,
                 controls::Hold{kHolder, now_ms + duration_s * 1000,
                                fmt::format("curtailed to {:.3f} kW by curtailment run {}",
                                            cap.cap_kw, result.run_id())});
    controls_.SendControl(std::move(c), cap.der_id, 0);
    pvs_curtailed_.Add();
    still_curtailed.insert(cap.der_id);
  }
  // PVs an earlier run capped that this one does not need to: free again.
  for (const std::string& der_id : curtailed) {
    if (still_curtailed.count(der_id) != 0) continue;
    holds_.Release(der_id, kHolder);
    controls_.SendCommand(der_id, derms::v1::RETURN_TO_DEFAULT,
                          fmt::format("not curtailed by curtailment run {}", result.run_id()),
                          now_ms);
  }
  curtailed = std::move(still_curtailed);
  result.set_reason(plan.reason + notes);
  run.deadline_mono_ms = time_.MonotonicMs() + options_.response_timeout_ms;
  bool done = run.waiting == 0;
  runs_[vder_id] = std::move(run);
  if (done) Finish(vder_id, "", now_ms);
}

void CurtailmentModule::OnControlResponse(const std::string& der_id,
                                          const derms::v1::ControlResponse& r, int64_t now_ms) {
  if (r.command_id().rfind("curtail-", 0) != 0) return;
  for (auto& [vder_id, run] : runs_) {
    auto it = run.member_by_command.find(r.command_id());
    if (it == run.member_by_command.end()) continue;
    auto* member = run.result.mutable_members(static_cast<int>(it->second));
    if (member->der_id() != der_id) return;
    // The first final answer counts; RECEIVED (a later start) is not one.
    if (r.status() == derms::v1::RECEIVED) return;
    bool first = member->status() == derms::v1::CONTROL_STATUS_UNSPECIFIED;
    member->set_status(r.status());
    member->set_applied_kw(r.applied_kw());
    member->set_reason(r.reason());
    if (first && run.waiting > 0 && --run.waiting == 0) Finish(vder_id, "", now_ms);
    return;
  }
}

bool CurtailmentModule::StartWatchRun(const std::string& why, int64_t now_ms) {
  if (runs_.count(options_.vder_id) != 0 || !scenario_) return false;
  const int64_t mono_ms = time_.MonotonicMs();
  if (mono_ms - last_watch_run_mono_ms_ < options_.min_interval_s * 1000) return false;
  spdlog::info("curtailment: {}: a run starts", why);
  last_watch_run_mono_ms_ = mono_ms;
  StartRun(options_.vder_id, "over_voltage", {}, ReplyTo{}, now_ms);
  return true;
}

void CurtailmentModule::OnObserved(const Inbound& m, int64_t now_ms) {
  if (options_.trigger_voltage_pu <= 0 || m.parsed.id != options_.vder_id) return;
  derms::v1::GridStatus g;
  // Dispatch counts and logs a bad one; it starts nothing here.
  if (!codec::ParseOperator(m.payload, "grid status", &g).ok() ||
      !registry::ValidateGridStatus(g, m.parsed.id).ok() ||
      g.voltage_pu() <= options_.trigger_voltage_pu) {
    return;
  }
  StartWatchRun(fmt::format("grid status of '{}' reports {:.4f} pu, above {:.4f} pu",
                            m.parsed.id, g.voltage_pu(), options_.trigger_voltage_pu),
                now_ms);
}

void CurtailmentModule::WatchVoltages(int64_t now_ms) {
  if (runs_.count(options_.vder_id) != 0 || !scenario_) return;
  if (time_.MonotonicMs() - last_watch_run_mono_ms_ < options_.min_interval_s * 1000) return;
  const vder::VderTree& tree = fleet_.vders().tree();
  int root = tree.Find(options_.vder_id);
  if (root < 0) return;
  const double limit_v = options_.trigger_voltage_pu * options_.nominal_v;
  fleet_.vders().ForEachMember(root, kWholeTree, [&](int, const std::string& der_id) {
    const registry::DerState* der = fleet_.Find(der_id);
    if (der == nullptr || der->birth.der_type() != derms::v1::PV || !der->has_telemetry ||
        !fleet_.IsActive(*der, now_ms) || der->last.voltage_v() <= limit_v) {
      return true;
    }
    StartWatchRun(fmt::format("der '{}' reports {:.1f} V, above {:.4f} pu", der_id,
                              der->last.voltage_v(), options_.trigger_voltage_pu),
                  now_ms);
    return false;
  });
}

void CurtailmentModule::CheckDeadlines(int64_t now_ms) {
  if (runs_.empty()) return;
  const int64_t mono_ms = time_.MonotonicMs();
  std::vector<std::string> due;
  for (const auto& [vder_id, run] : runs_) {
    if (mono_ms >= run.deadline_mono_ms) due.push_back(vder_id);
  }
  for (const auto& vder_id : due) Finish(vder_id, "", now_ms);
}

void CurtailmentModule::OnStop(int64_t now_ms) {
  while (!runs_.empty()) Finish(runs_.begin()->first, "the aggregator stopped", now_ms);
}

void CurtailmentModule::Finish(const std::string& vder_id, const std::string& note,
                               int64_t now_ms) {
  auto it = runs_.find(vder_id);
  if (it == runs_.end()) return;
  Run run = std::move(it->second);
  runs_.erase(it);
  CurtailResult& result = run.result;
  if (result.outcome() == derms::v1::CURTAIL_OUTCOME_UNSPECIFIED) {
    size_t sent = 0, accepted = 0;
    std::string trouble;
    for (const auto& m : result.members()) {
      if (m.command_id().empty()) continue;
      ++sent;
      if (m.status() == derms::v1::APPLIED) {
        ++accepted;
      } else {
        trouble += fmt::format("; '{}' {}{}", m.der_id(),
                               m.status() == derms::v1::CONTROL_STATUS_UNSPECIFIED
                                   ? std::string("did not answer")
                                   : derms::v1::ControlStatus_Name(m.status()),
                               m.reason().empty() || m.status() == derms::v1::CONTROL_STATUS_UNSPECIFIED
                                   ? std::string()
                                   : ": " + m.reason());
      }
    }
    if (sent == 0) {
      result.set_outcome(derms::v1::CURTAIL_NOT_NEEDED);
    } else if (accepted == sent) {
      result.set_outcome(derms::v1::CURTAIL_COMPLETED);
    } else {
      result.set_outcome(derms::v1::CURTAIL_PARTIAL);
      result.set_reason(fmt::format("{}: {} of {} PVs accepted their cap{}", result.reason(),
                                    accepted, sent, trouble));
    }
  }
  if (!note.empty()) result.set_reason(result.reason() + "; " + note);
  result.set_finished_ms(now_ms);
  Record(run);
  Answer(result, run.reply_to);
}

void CurtailmentModule::Record(const Run& run) {
  using storage::RowValue;
  const CurtailResult& r = run.result;
  sink_.Add(storage::TableRowRecord{
      kRunsTable,
      {"run_id", "vder_id", "request_id", "trigger", "policy", "outcome", "started_ms",
       "finished_ms", "load_mult", "pvs", "available_kw", "curtailed_kw", "max_ratio", "min_ratio",
       "jain_index", "iterations", "v_max_before_pu", "v_max_after_pu", "v_min_after_pu",
       "reason"},
      {r.run_id(), r.vder_id(), r.request_id(), r.trigger(), r.policy(),
       derms::v1::CurtailOutcome_Name(r.outcome()), r.timestamp_ms(), r.finished_ms(),
       r.load_mult(), static_cast<int64_t>(r.members_size()), r.available_kw(), r.curtailed_kw(),
       r.max_ratio(), r.min_ratio(), r.jain_index(), static_cast<int64_t>(r.iterations()),
       r.v_max_before_pu(), r.v_max_after_pu(), r.v_min_after_pu(), r.reason()},
      true});
  for (const auto& m : r.members()) {
    sink_.Add(storage::TableRowRecord{
        kMembersTable,
        {"run_id", "der_id", "feeder_node", "available_kw", "ratio", "cap_kw", "command_id",
         "status", "applied_kw", "reason"},
        {r.run_id(), m.der_id(), m.feeder_node(), m.available_kw(), m.ratio(), m.cap_kw(),
         m.command_id(), derms::v1::ControlStatus_Name(m.status()), m.applied_kw(), m.reason()},
        true});
  }
  for (const auto& v : run.voltages) {
    sink_.Add(storage::TableRowRecord{
        kVoltagesTable,
        {"run_id", "bus", "phase", "distance_kft", "before_pu", "after_pu"},
        {r.run_id(), v.bus, static_cast<int64_t>(v.phase), v.distance_kft, v.before_pu,
         v.after_pu},
        true});
  }
}

void CurtailmentModule::Answer(const CurtailResult& result, const ReplyTo& reply_to) {
  std::string json = codec::ToOperatorJson(result);
  if (topics::IsValidId(result.vder_id())) {
    outbox_.Publish(topics::VderCurtailResult(result.vder_id()), json);
  }
  outbox_.Reply(reply_to, json);
}

}  // namespace derms::aggregator
