#include "broker_plugin/guard.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace derms::broker {
namespace {

void Bump(std::map<std::string, uint64_t, std::less<>>* m, std::string_view key) {
  auto it = m->find(key);
  if (it == m->end()) it = m->emplace(std::string(key), 0).first;
  ++it->second;
}

// Keys are the plugin's own constants and validated identifiers; escape
// anyway, so that the JSON stays JSON whatever a name holds.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += fmt::format("\\u{:04x}", ch);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string Object(const std::map<std::string, uint64_t, std::less<>>& m) {
  std::string out = "{";
  for (const auto& [k, v] : m) {
    if (out.size() > 1) out += ",";
    out += fmt::format("{}:{}", Quote(k), v);
  }
  return out + "}";
}

}  // namespace

Guard::Guard(PluginOptions options, std::optional<PasswordFile> passwords, int64_t now_ms)
    : options_(std::move(options)),
      passwords_(std::move(passwords)),
      checker_(options_.max_payload_bytes),
      limiter_(options_),
      started_at_ms_(now_ms) {
  // Every key from the start, so a reader sees what could be counted.
  for (auto reason : {kReasonOversized, kReasonUndecodable, kReasonWrongType, kReasonIdMismatch,
                      kReasonNotFinite, kReasonOutOfRange}) {
    counters_.rejected_by_reason.emplace(std::string(reason), 0);
  }
  for (auto rule : {kRuleNoIdentity, kRuleDerOtherDer, kRuleDerWrongLeaf, kRuleDerOutside,
                    kRuleDerWildcard, kRuleReadOnly, kRuleNotForRole, kRuleBrokerTopic}) {
    counters_.acl_denied_by_rule.emplace(std::string(rule), 0);
  }
}

Guard::Client& Guard::ClientFor(const void* client, const char* username) {
  auto it = clients_.find(client);
  if (it != clients_.end()) return it->second;
  Client c;
  c.identity = IdentityOf(username, options_);
  return clients_.emplace(client, std::move(c)).first->second;
}

Guard::Offender* Guard::OffenderFor(const Client& c) {
  if (!c.identity) return nullptr;
  return &offenders_[c.identity->name];
}

Guard::AuthVerdict Guard::Authenticate(const void* client, const char* username,
                                       const char* password) {
  if (!passwords_) return AuthVerdict::kDefer;
  // No user name: Mosquitto's allow_anonymous decides, and the client has
  // the anonymous role, if any.
  if ((username == nullptr || *username == '\0') && options_.anonymous_role != "none") {
    return AuthVerdict::kDefer;
  }
  // A new connection on this key: forget what an earlier one was.
  clients_.erase(client);
  bool ok = username != nullptr && password != nullptr && passwords_->Verify(username, password) &&
            IdentityOf(username, options_).has_value();
  if (!ok) {
    ++counters_.auth_refused;
    return AuthVerdict::kDeny;
  }
  ++counters_.auth_accepted;
  ClientFor(client, username);
  return AuthVerdict::kAllow;
}

Decision Guard::CheckAcl(const void* client, const char* username, Access access,
                         std::string_view topic) {
  Client& c = ClientFor(client, username);
  AclDecision d = c.identity ? broker::CheckAcl(*c.identity, access, topic, options_)
                             : AclDecision{false, kRuleNoIdentity};
  if (d.allowed) return Decision{};
  Bump(&counters_.acl_denied_by_rule, d.rule);
  if (Offender* o = OffenderFor(c)) ++o->acl_denied;
  return Decision{false, d.rule, {}};
}

Decision Guard::CheckMessage(const void* client, const char* username, std::string_view topic,
                             std::string_view payload, int64_t wall_ms, int64_t mono_ms) {
  PayloadVerdict v = checker_.Check(topic, payload, wall_ms);
  if (!v.device_topic) return Decision{};
  ++counters_.messages_checked;
  Client& c = ClientFor(client, username);
  if (!v.status.ok()) {
    Bump(&counters_.rejected_by_reason, v.status.code());
    if (Offender* o = OffenderFor(c)) ++o->rejected;
    auto it = counters_.rejected_by_reason.find(v.status.code());
    return Decision{false, it->first, v.status.message()};
  }
  std::string_view der_id;
  DerLeaf leaf;
  (void)ParseDerTopic(topic, &der_id, &leaf);
  if (v.leaf == DerLeaf::kBirth) {
    limiter_.SetInterval(der_id, v.telemetry_interval_s);
  } else if (v.leaf == DerLeaf::kTelemetry) {
    auto outcome = limiter_.Admit(der_id, v.historical, mono_ms);
    if (outcome != TelemetryRateLimiter::Outcome::kAdmit) {
      ++counters_.rate_limited;
      if (Offender* o = OffenderFor(c)) ++o->rate_limited;
      if (outcome == TelemetryRateLimiter::Outcome::kDropAndKick && c.identity) {
        kicks_.push_back(c.identity->name);
        ++counters_.kicked;
      }
      return Decision{false, "rate_limited", {}};
    }
  }
  ++counters_.messages_accepted;
  return Decision{};
}

void Guard::OnDisconnect(const void* client) { clients_.erase(client); }

std::vector<std::string> Guard::TakeKicks() { return std::exchange(kicks_, {}); }

std::optional<std::string> Guard::StatusIfDue(int64_t wall_ms, int64_t mono_ms) {
  if (mono_ms < next_status_mono_ms_) return std::nullopt;
  next_status_mono_ms_ = mono_ms + options_.status_interval_s * 1000;
  return RenderStatus(wall_ms);
}

std::string Guard::RenderStatus(int64_t wall_ms) const {
  std::map<Role, uint64_t> connected;
  for (const auto& [key, c] : clients_) {
    if (c.identity) ++connected[c.identity->role];
  }
  std::vector<std::pair<std::string_view, const Offender*>> worst;
  for (const auto& [name, o] : offenders_) {
    if (o.total() > 0) worst.emplace_back(name, &o);
  }
  std::sort(worst.begin(), worst.end(), [](const auto& a, const auto& b) {
    return a.second->total() != b.second->total() ? a.second->total() > b.second->total()
                                                  : a.first < b.first;
  });
  if (worst.size() > static_cast<size_t>(options_.top_offenders)) {
    worst.resize(static_cast<size_t>(options_.top_offenders));
  }
  std::string top = "[";
  for (const auto& [name, o] : worst) {
    if (top.size() > 1) top += ",";
    top += fmt::format(R"({{"name":{},"rejected":{},"acl_denied":{},"rate_limited":{}}})",
                       Quote(name), o->rejected, o->acl_denied, o->rate_limited);
  }
  top += "]";
  return fmt::format(R"({{"timestamp_ms":{},"started_at_ms":{},"connected_ders":{},)"
                     R"("connected":{{"aggregator":{},"operator":{},"dispatcher":{}}},)"
                     R"("auth":{{"accepted":{},"refused":{}}},)"
                     R"("messages":{{"checked":{},"accepted":{}}},)"
                     R"("rejected_by_reason":{},"acl_denied_by_rule":{},)"
                     R"("rate_limited":{},"kicked":{},"top_offenders":{}}})",
                     wall_ms, started_at_ms_, connected[Role::kDer], connected[Role::kAggregator],
                     connected[Role::kOperator], connected[Role::kDispatcher],
                     counters_.auth_accepted, counters_.auth_refused, counters_.messages_checked,
                     counters_.messages_accepted, Object(counters_.rejected_by_reason),
                     Object(counters_.acl_denied_by_rule), counters_.rate_limited, counters_.kicked,
                     top);
}

}  // namespace derms::broker
