#include "cloud_aggregator/controls/control_ledger.h"

#include <fmt/format.h>

#include <iterator>

namespace derms::controls {

bool Accepts(derms::v1::ControlStatus status) {
  return status == derms::v1::APPLIED || status == derms::v1::CLAMPED ||
         status == derms::v1::RECEIVED;
}

void ControlLedger::Sent(SentControl control) {
  std::string der_id = control.der_id;
  std::string command_id = control.command_id;
  sent_[command_id] = std::move(control);
  latest_sent_[der_id] = std::move(command_id);
}

const SentControl* ControlLedger::OnAnswer(const std::string& der_id, const std::string& command_id,
                                           derms::v1::ControlStatus status, double applied_kw) {
  // The control a DER follows ends with it, or when another takes over.
  auto in_force = in_force_.find(der_id);
  if (in_force != in_force_.end() && in_force->second.command_id == command_id &&
      !Accepts(status)) {
    in_force_.erase(in_force);
  }
  auto sent = sent_.find(command_id);
  if (sent == sent_.end() || sent->second.der_id != der_id) return nullptr;
  const SentControl& c = sent->second;
  // An accepted control is what the DER follows now if it is the latest we
  // sent it (no return-to-default went after it); a refused one leaves it
  // following whatever it followed before.
  auto latest = latest_sent_.find(der_id);
  if (latest != latest_sent_.end() && latest->second == command_id && Accepts(status)) {
    in_force_[der_id] =
        InForce{command_id, c.run_id, status == derms::v1::CLAMPED ? applied_kw : c.kw, c.ends_ms,
                status == derms::v1::APPLIED};
  }
  return &c;
}

const SentControl* ControlLedger::Find(const std::string& command_id) const {
  auto it = sent_.find(command_id);
  return it == sent_.end() ? nullptr : &it->second;
}

void ControlLedger::Release(const std::string& der_id) {
  in_force_.erase(der_id);
  latest_sent_.erase(der_id);
}

const InForce* ControlLedger::InForceFor(const std::string& der_id, int64_t now_ms) const {
  auto it = in_force_.find(der_id);
  if (it == in_force_.end() || it->second.ends_ms <= now_ms) return nullptr;
  return &it->second;
}

std::vector<std::string> ControlLedger::DersInForce() const {
  std::vector<std::string> ders;
  ders.reserve(in_force_.size());
  for (const auto& [der_id, f] : in_force_) ders.push_back(der_id);
  return ders;
}

void ControlLedger::ForgetEnded(int64_t now_ms) {
  for (auto it = sent_.begin(); it != sent_.end();) {
    if (it->second.ends_ms + kLateAnswerMs >= now_ms) {
      ++it;
      continue;
    }
    auto latest = latest_sent_.find(it->second.der_id);
    if (latest != latest_sent_.end() && latest->second == it->first) latest_sent_.erase(latest);
    it = sent_.erase(it);
  }
  for (auto it = in_force_.begin(); it != in_force_.end();) {
    it = it->second.ends_ms < now_ms ? in_force_.erase(it) : std::next(it);
  }
}

std::string ControlLedger::CheckInvariants() const {
  for (const auto& [der_id, command_id] : latest_sent_) {
    auto sent = sent_.find(command_id);
    if (sent == sent_.end()) {
      return fmt::format("latest control '{}' of der '{}' is not known", command_id, der_id);
    }
    if (sent->second.der_id != der_id) {
      return fmt::format("latest control '{}' of der '{}' was sent to '{}'", command_id, der_id,
                         sent->second.der_id);
    }
  }
  for (const auto& [der_id, f] : in_force_) {
    auto sent = sent_.find(f.command_id);
    if (sent != sent_.end() && sent->second.der_id != der_id) {
      return fmt::format("control '{}' in force for der '{}' was sent to '{}'", f.command_id,
                         der_id, sent->second.der_id);
    }
  }
  return "";
}

}  // namespace derms::controls
