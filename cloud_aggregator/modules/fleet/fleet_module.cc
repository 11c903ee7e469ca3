#include "cloud_aggregator/modules/fleet/fleet_module.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "cloud_aggregator/registry/validation.h"
#include "common/codec.h"
#include "common/topics.h"

namespace derms::aggregator {

void FleetOptions::Describe(config::OptionSet& set) {
  set.Int("registry.offline_after_intervals", &offline_after_intervals, 1, 1000,
          "a DER silent for this many of its telemetry intervals is offline")
      .Cli("--offline-after-intervals");
  set.Int("vder_status.interval_s", &vder_status_interval_s, 1, 86400,
          "vder/{id}/status is published at least this often (wall seconds)");
  set.Int("vder_status.min_interval_ms", &vder_status_min_interval_ms, 0, 3600000,
          "and at most once per this many wall milliseconds");
  set.Real("vder_status.change_kw", &vder_status_change_kw, 0, 1e12,
           "an aggregate moving this much (kW) publishes it early");
}

FleetModule::FleetModule(const FleetOptions& options, vder::VderConfig config, vder::VderTree tree,
                         const ModulePorts& ports, ControlChannel& controls,
                         std::map<std::string, derms::v1::DerBirth> stored_births)
    : options_(options),
      outbox_(ports.outbox),
      sink_(ports.sink),
      time_(ports.time),
      intake_(ports.intake),
      controls_(controls),
      registry_(registry::RegistryOptions{options.offline_after_intervals, 300, 30000}),
      stored_births_(std::move(stored_births)),
      config_(std::move(config)),
      fleet_(std::make_unique<vder::VderFleet>(std::move(tree))),
      ders_known_(ports.metrics.AddGauge("ders_known", "DERs ever heard of")),
      ders_online_(ports.metrics.AddGauge("ders_online", "DERs online now")),
      vders_(ports.metrics.AddGauge("vders", "virtual DERs, implicit ones included")),
      vder_conflicts_(ports.metrics.AddCounter("vder_conflicts",
                                               "DERs two virtual DERs claimed (the first kept)")),
      seq_jumps_(ports.metrics.AddCounter(
          "telemetry_seq_jumps",
          "telemetry whose seq ran further ahead than the DER's interval allows (stored, not "
          "adopted)")),
      reloads_(ports.metrics.AddCounter("reloads", "configuration reloads applied")),
      reloads_rejected_(ports.metrics.AddCounter(
          "reloads_rejected", "configuration reloads refused (the running one stayed)")) {
  Count();
}

std::vector<topics::Kind> FleetModule::Topics() const {
  return {topics::Kind::kDerBirth, topics::Kind::kDerStatus, topics::Kind::kDerTelemetry};
}

void FleetModule::OnMessage(const Inbound& m, int64_t now_ms) {
  switch (m.parsed.kind) {
    case topics::Kind::kDerBirth:
      return OnBirth(m, now_ms);
    case topics::Kind::kDerStatus:
      return OnStatus(m, now_ms);
    case topics::Kind::kDerTelemetry:
      return OnTelemetry(m, now_ms);
    default:
      return;
  }
}

void FleetModule::AddJobs(Scheduler& scheduler) {
  scheduler.Every("fleet.expire_silent", 200, [this](int64_t now_ms) {
    for (const auto& der_id : registry_.ExpireSilent(now_ms)) {
      NoteOnlineChange(*registry_.Find(der_id), false, "silence", now_ms);
    }
    if (outbox_.online()) PublishVderStatuses(false);
  });
  scheduler.Every("fleet.store_membership", 5000, [this](int64_t) {
    if (membership_changed_) StoreMembership();
  });
}

void FleetModule::Count() {
  ders_known_.Set(static_cast<double>(registry_.size()));
  ders_online_.Set(static_cast<double>(registry_.online_count()));
  vders_.Set(static_cast<double>(fleet_->tree().size()));
}

void FleetModule::NoteOnlineChange(const registry::DerState& der, bool online,
                                   const std::string& cause, int64_t now_ms) {
  spdlog::info("der '{}' {} ({}, bd_seq {})", der.der_id, online ? "online" : "offline", cause,
               der.bd_seq);
  sink_.Add(storage::StatusRecord{der.der_id, online, der.bd_seq, cause, now_ms, now_ms});
  RefreshContribution(der);
  Count();
}

void FleetModule::OnBirth(const Inbound& m, int64_t now_ms) {
  const std::string& der_id = m.parsed.id;
  derms::v1::DerBirth birth;
  Status s = codec::ParseDevice(m.payload, "birth", der_id, &birth);
  if (s.ok()) s = registry::ValidateBirth(birth, der_id);
  if (!s.ok()) return intake_.Reject(s, m.topic);
  intake_.Accept();
  auto out = registry_.OnBirth(birth, now_ms);
  if (out.stale) return intake_.Stale();
  sink_.Add(storage::BirthRecord{birth, now_ms});
  PlaceDer(*out.der);
  if (out.change == registry::Change::kOnline) NoteOnlineChange(*out.der, true, "birth", now_ms);
  Count();
}

void FleetModule::OnStatus(const Inbound& m, int64_t now_ms) {
  const std::string& der_id = m.parsed.id;
  derms::v1::DerStatus status;
  Status s = codec::ParseDevice(m.payload, "status", der_id, &status);
  if (s.ok()) s = registry::ValidateStatus(status, der_id);
  if (!s.ok()) return intake_.Reject(s, m.topic);
  intake_.Accept();
  auto out = registry_.OnStatus(status, now_ms);
  if (out.stale) {
    intake_.Stale();
    spdlog::info("der '{}': status from older session bd_seq {} ignored", der_id, status.bd_seq());
    return;
  }
  if (out.change != registry::Change::kNone) {
    NoteOnlineChange(*out.der, status.online(), "status", now_ms);
  }
}

void FleetModule::OnTelemetry(const Inbound& m, int64_t now_ms) {
  const std::string& der_id = m.parsed.id;
  derms::v1::Telemetry t;
  Status s = codec::ParseDevice(m.payload, "telemetry", der_id, &t);
  if (s.ok()) s = registry::ValidateTelemetry(t, der_id, now_ms);
  if (!s.ok()) return intake_.Reject(s, m.topic);
  // Checked against the nameplate before anything takes it in: an
  // implausible sample must not become the DER's state or its history.
  const derms::v1::DerBirth* nameplate = nullptr;
  if (const auto* known = registry_.Find(der_id); known != nullptr && known->has_birth) {
    nameplate = &known->birth;
  } else if (auto stored = stored_births_.find(der_id); stored != stored_births_.end()) {
    nameplate = &stored->second;
  }
  if (nameplate != nullptr) {
    s = registry::CheckTelemetryPlausible(t, *nameplate, now_ms, options_.plausibility);
    if (!s.ok()) return Quarantine(std::move(t), s, m.topic, now_ms);
  }
  auto out = registry_.OnTelemetry(t, now_ms);
  if (out.request_rebirth) {
    controls_.SendCommand(der_id, derms::v1::REBIRTH, "telemetry seen without a birth", now_ms);
  }
  if (out.unborn && nameplate != nullptr) {
    // Known from an earlier run and plausible: kept while its birth is
    // asked for, though not yet its state (no session to place it in).
    intake_.Accept();
    sink_.Add(storage::TelemetryRecord{std::move(t), now_ms});
    return Count();
  }
  if (out.unborn) {
    Status why = Status::Error(
        "no_birth", fmt::format("telemetry from der '{}': seq {} came before any birth of the DER, "
                                "so nothing says what it can produce (rebirth requested)",
                                der_id, t.seq()));
    Quarantine(std::move(t), why, m.topic, now_ms);
    return Count();
  }
  intake_.Accept();
  if (out.seq_jump) {
    seq_jumps_.Add();
    intake_.Warn("seq_jump",
                 fmt::format("telemetry from der '{}': seq {} is beyond the {} its interval and "
                             "the time since its newest sample (seq {}) allow; stored, not taken "
                             "as its state",
                             der_id, t.seq(), out.seq_ceiling, out.der->last.seq()));
  } else if (out.seq_rebased) {
    intake_.Warn("seq_rebased",
                 fmt::format("telemetry from der '{}': seq re-based to {}, a run of samples "
                             "having continued a jump",
                             der_id, t.seq()));
  }
  if (out.stale) intake_.Stale();
  // Stored whatever its order: the (der_id, seq) key drops true duplicates.
  sink_.Add(storage::TelemetryRecord{std::move(t), now_ms});
  if (out.change == registry::Change::kOnline) {
    NoteOnlineChange(*out.der, true, "telemetry", now_ms);
  } else if (!out.stale && !out.seq_jump) {
    RefreshContribution(*out.der);
  }
  Count();
}

void FleetModule::Quarantine(derms::v1::Telemetry t, const Status& why, const std::string& topic,
                             int64_t now_ms) {
  intake_.Reject(why, topic);
  sink_.Add(storage::QuarantineRecord{std::move(t), why.code(), why.message(), now_ms});
}

FleetModule::VderView& FleetModule::View(int v) {
  if (views_.size() < fleet_->tree().size()) views_.resize(fleet_->tree().size());
  return views_[v];
}

void FleetModule::ShowGrid(int v, const derms::v1::GridStatus& grid) {
  VderView& view = View(v);
  *view.status.mutable_grid() = grid;
  view.changed = true;
}

void FleetModule::ShowRun(int v, double target_kw, const derms::v1::DispatchRunSummary& run) {
  VderView& view = View(v);
  view.status.set_target_kw(target_kw);
  *view.status.mutable_last_run() = run;
  view.changed = true;
}

void FleetModule::PlaceDer(const registry::DerState& der) {
  membership_changed_ = true;
  size_t before = fleet_->tree().size();
  std::string conflict = fleet_->Place(der.birth);
  if (!conflict.empty()) {
    vder_conflicts_.Add();
    intake_.Warn("vder_conflict", conflict);
  }
  if (fleet_->tree().size() != before) {
    spdlog::info(
        "virtual DER '{}' made for substation '{}' (no configured virtual DER claims "
        "its DERs)",
        fleet_->tree().definition(static_cast<int>(before)).id, der.birth.substation_id());
  }
  RefreshContribution(der);
}

void FleetModule::StoreMembership() {
  membership_changed_ = false;
  const vder::VderTree& tree = fleet_->tree();
  storage::VderMembersRecord record;
  for (int v = 0; v < static_cast<int>(tree.size()); ++v) {
    std::set<std::string> ders;
    std::vector<int> todo{v};
    std::set<int> seen;
    while (!todo.empty()) {
      int u = todo.back();
      todo.pop_back();
      if (!seen.insert(u).second) continue;
      ders.insert(fleet_->direct_members(u).begin(), fleet_->direct_members(u).end());
      for (int c : tree.children(u)) todo.push_back(c);
    }
    record.members.emplace_back(tree.definition(v).id,
                                std::vector<std::string>(ders.begin(), ders.end()));
  }
  sink_.Add(std::move(record));
}

void FleetModule::RefreshContribution(const registry::DerState& der) {
  if (!der.has_birth) return;
  vder::Contribution c;
  c.online = der.online;
  if (der.online && der.has_telemetry) {
    const auto& t = der.last;
    c.output_kw = t.active_power_kw();
    c.energy_available_kwh = dispatch::EnergyAvailableKwh(der.birth, t);
    // A faulted DER still produces what it produces, but offers nothing.
    if (!der.faulted()) {
      auto m = dispatch::DerMember(der.birth, t, static_cast<double>(options_.headroom_s), 0.0);
      c.available_discharge_kw = std::max(0.0, m.max_kw - c.output_kw);
      c.available_charge_kw = std::max(0.0, c.output_kw - m.min_kw);
    }
  }
  fleet_->Update(der.der_id, c);
}

void FleetModule::PublishVderStatuses(bool force_all) {
  const int64_t mono_ms = time_.MonotonicMs();
  const int64_t now_ms = time_.NowMs();
  const vder::VderTree& tree = fleet_->tree();
  for (size_t i = 0; i < tree.size(); ++i) {
    int v = static_cast<int>(i);
    VderView& view = View(v);
    const vder::Aggregate& a = fleet_->aggregate(v);
    const vder::Aggregate& p = view.published;
    const int64_t since_ms =
        view.published_mono_ms < 0 ? INT64_MAX : mono_ms - view.published_mono_ms;
    bool stale = since_ms >= options_.vder_status_interval_s * 1000;
    bool moved =
        fleet_->version(v) != view.published_version &&
        (a.members_total != p.members_total || a.members_online != p.members_online ||
         std::abs(a.output_kw - p.output_kw) >= options_.vder_status_change_kw ||
         std::abs(a.available_discharge_kw - p.available_discharge_kw) >=
             options_.vder_status_change_kw ||
         std::abs(a.available_charge_kw - p.available_charge_kw) >= options_.vder_status_change_kw);
    bool may = since_ms >= options_.vder_status_min_interval_ms;
    if (!force_all && !stale && !((moved || view.changed) && may)) continue;
    const vder::VderDefinition& def = tree.definition(v);
    derms::v1::VirtualDerStatus& st = view.status;
    st.set_vder_id(def.id);
    st.set_name(def.name);
    st.set_path(tree.Path(v));
    st.set_policy(std::string(dispatch::PolicyName(def.policy)));
    st.clear_children();
    for (int c : tree.children(v)) st.add_children(tree.definition(c).id);
    st.set_dispatchable(def.dispatchable);
    st.set_grid_substation(def.grid_substation);
    st.set_members_total(a.members_total);
    st.set_members_online(a.members_online);
    st.set_members_direct(static_cast<uint32_t>(fleet_->direct_members(v).size()));
    st.set_output_kw(a.output_kw);
    st.set_available_discharge_kw(a.available_discharge_kw);
    st.set_available_charge_kw(a.available_charge_kw);
    st.set_energy_available_kwh(a.energy_available_kwh);
    st.set_timestamp_ms(now_ms);
    outbox_.Publish(topics::VderStatus(def.id), codec::ToOperatorJson(st), true);
    view.published = a;
    view.published_version = fleet_->version(v);
    view.published_mono_ms = mono_ms;
    view.changed = false;
  }
  vders_.Set(static_cast<double>(tree.size()));
}

void FleetModule::Reload(const ConfigLoader& load, const std::function<void(int64_t)>& before,
                         int64_t now_ms) {
  auto loaded = load();
  StatusOr<vder::VderTree> tree = loaded.ok() ? vder::VderTree::Build(loaded->vders)
                                              : StatusOr<vder::VderTree>(loaded.status());
  if (!tree.ok()) {
    reloads_rejected_.Add();
    spdlog::error("configuration reload rejected, the running virtual DERs stay in force: {}",
                  tree.status().message());
    return;
  }
  if (before) before(now_ms);
  std::vector<std::string> old_ids;
  for (size_t v = 0; v < fleet_->tree().size(); ++v) {
    old_ids.push_back(fleet_->tree().definition(static_cast<int>(v)).id);
  }
  fleet_ = std::make_unique<vder::VderFleet>(std::move(tree).value());
  config_ = std::move(loaded).value();
  views_.clear();
  registry_.ForEach([this](const registry::DerState& der) {
    if (der.has_birth) PlaceDer(der);
  });
  // Virtual DERs that are gone lose their retained status.
  for (const auto& id : old_ids) {
    if (fleet_->tree().Find(id) < 0) outbox_.Publish(topics::VderStatus(id), "", true);
  }
  reloads_.Add();
  Count();
  spdlog::info("configuration reloaded: {} virtual DERs, {} DERs placed", fleet_->tree().size(),
               registry_.size());
  PublishVderStatuses(true);
}

}  // namespace derms::aggregator
