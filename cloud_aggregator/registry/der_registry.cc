#include "cloud_aggregator/registry/der_registry.h"

#include <algorithm>
#include <cstdint>

namespace derms::registry {

bool DerState::faulted() const {
  if (!has_telemetry) return false;
  return std::any_of(last.alarms().begin(), last.alarms().end(),
                     [](const auto& a) { return a.severity() == derms::v1::CRITICAL; });
}

int64_t DerState::telemetry_interval_ms() const {
  return static_cast<int64_t>(birth.telemetry_interval_s()) * 1000;
}

DerRegistry::DerRegistry(RegistryOptions options) : options_(options) {}

DerState& DerRegistry::Get(const std::string& der_id) {
  auto [it, inserted] = ders_.try_emplace(der_id);
  if (inserted) it->second.der_id = der_id;
  return it->second;
}

const DerState* DerRegistry::Find(const std::string& der_id) const {
  auto it = ders_.find(der_id);
  return it == ders_.end() ? nullptr : &it->second;
}

DerRegistry::Outcome DerRegistry::OnBirth(const derms::v1::DerBirth& birth, int64_t now_ms) {
  DerState& der = Get(birth.der_id());
  Outcome out;
  out.der = &der;
  if (birth.bd_seq() < der.bd_seq) {
    out.stale = true;
    return out;
  }
  der.birth = birth;
  der.has_birth = true;
  der.bd_seq = birth.bd_seq();
  // A birth starts the silence clock: the first telemetry is one interval away.
  der.last_heard_ms = std::max(der.last_heard_ms, now_ms);
  if (!der.online) out.change = Change::kOnline;
  SetOnline(der, true);
  der.offline_cause = OfflineCause::kNone;
  return out;
}

DerRegistry::Outcome DerRegistry::OnStatus(const derms::v1::DerStatus& status, int64_t now_ms) {
  DerState& der = Get(status.der_id());
  Outcome out;
  out.der = &der;
  // A will or status from an older session must not touch the current one.
  if (status.bd_seq() < der.bd_seq) {
    out.stale = true;
    return out;
  }
  der.bd_seq = status.bd_seq();
  if (status.online()) {
    der.last_heard_ms = std::max(der.last_heard_ms, now_ms);
    if (!der.online && der.has_birth) {
      SetOnline(der, true);
      der.offline_cause = OfflineCause::kNone;
      out.change = Change::kOnline;
    }
  } else {
    // Even when silence already took it offline: the explicit word wins, so
    // only a new birth brings it back.
    der.offline_cause = OfflineCause::kStatus;
    if (der.online) {
      SetOnline(der, false);
      out.change = Change::kOffline;
    }
  }
  return out;
}

DerRegistry::Outcome DerRegistry::OnTelemetry(const derms::v1::Telemetry& t, int64_t now_ms) {
  DerState& der = Get(t.der_id());
  Outcome out;
  out.der = &der;
  if (!der.has_birth) {
    // Nothing to check it against, and no session to place it in.
    out.unborn = true;
    if (now_ms - der.rebirth_requested_ms >= options_.rebirth_min_interval_ms) {
      der.rebirth_requested_ms = now_ms;
      out.request_rebirth = true;
    }
    return out;
  }
  const bool live = !t.is_historical();
  if (der.has_telemetry && t.seq() > der.last.seq()) {
    uint64_t ceiling =
        SeqCeiling(der, der.last.seq(), der.last_adopted_ms, der.last_bd_seq, now_ms);
    if (t.seq() > ceiling) {
      auto [watch, fresh] = jump_watches_.try_emplace(der.der_id);
      JumpWatch& w = watch->second;
      bool continues = !fresh && t.seq() > w.seq &&
                       t.seq() <= SeqCeiling(der, w.seq, w.heard_ms, w.bd_seq, now_ms);
      w.run = continues ? w.run + 1 : 1;
      w.seq = t.seq();
      w.heard_ms = now_ms;
      w.bd_seq = der.bd_seq;
      if (w.run < options_.seq_jump_confirmations) {
        out.seq_jump = true;
        out.seq_ceiling = ceiling;
        return out;
      }
      out.seq_rebased = true;
    }
  }
  if (live) der.last_heard_ms = std::max(der.last_heard_ms, now_ms);
  if (der.has_telemetry && t.seq() <= der.last.seq()) {
    out.stale = true;  // redelivered or historical: stored, but not the newest state
  } else {
    der.last = t;
    der.has_telemetry = true;
    der.last_adopted_ms = now_ms;
    der.last_bd_seq = der.bd_seq;
    // The adopted sequence goes on (or a jump was confirmed): no run to watch.
    if (!jump_watches_.empty()) jump_watches_.erase(der.der_id);
  }
  // Silence made it offline; hearing it again brings it back. An explicit
  // offline status waits for the next birth instead.
  if (!der.online && der.offline_cause == OfflineCause::kSilence && live) {
    SetOnline(der, true);
    der.offline_cause = OfflineCause::kNone;
    out.change = Change::kOnline;
  }
  return out;
}

int64_t DerRegistry::IntervalMs(const DerState& der) const {
  int64_t interval_ms = der.telemetry_interval_ms();
  return interval_ms > 0 ? interval_ms : options_.default_telemetry_interval_s * 1000;
}

uint64_t DerRegistry::SeqCeiling(const DerState& der, uint64_t seq, int64_t heard_ms,
                                 uint64_t bd_seq, int64_t now_ms) const {
  const int64_t elapsed_ms = std::max<int64_t>(0, now_ms - heard_ms);
  const uint64_t sessions = der.bd_seq > bd_seq ? std::min<uint64_t>(der.bd_seq - bd_seq, 8) : 0;
  const uint64_t allowed = static_cast<uint64_t>(options_.seq_pace) *
                               (static_cast<uint64_t>(elapsed_ms / IntervalMs(der)) + 1) +
                           static_cast<uint64_t>(options_.seq_slack) +
                           static_cast<uint64_t>(options_.seq_session_slack) * sessions;
  return seq > UINT64_MAX - allowed ? UINT64_MAX : seq + allowed;
}

bool DerRegistry::Silent(const DerState& der, int64_t now_ms) const {
  return now_ms - der.last_heard_ms > options_.offline_after_intervals * IntervalMs(der);
}

std::vector<std::string> DerRegistry::ExpireSilent(int64_t now_ms) {
  std::vector<std::string> expired;
  for (auto& [id, der] : ders_) {
    if (der.online && Silent(der, now_ms)) {
      SetOnline(der, false);
      der.offline_cause = OfflineCause::kSilence;
      expired.push_back(id);
    }
  }
  return expired;
}

bool DerRegistry::IsActive(const DerState& der, int64_t now_ms) const {
  return der.online && der.has_birth && der.has_telemetry && !der.faulted() && !Silent(der, now_ms);
}

void DerRegistry::SetOnline(DerState& der, bool online) {
  if (der.online == online) return;
  der.online = online;
  online ? ++online_count_ : --online_count_;
}

}  // namespace derms::registry
