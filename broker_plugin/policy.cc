#include "broker_plugin/policy.h"

#include "common/topics.h"

namespace derms::broker {
namespace {

constexpr AclDecision kAllow{true, {}};
constexpr std::string_view kBrokerPrefix = "derms/v1/broker/";
constexpr AclDecision Deny(std::string_view rule) { return AclDecision{false, rule}; }

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool HasWildcard(std::string_view s) { return s.find_first_of("+#") != std::string_view::npos; }

// The first level of `rel` and the rest after its '/' (empty when none).
std::string_view Head(std::string_view rel, std::string_view* rest) {
  size_t slash = rel.find('/');
  if (slash == std::string_view::npos) {
    *rest = {};
    return rel;
  }
  *rest = rel.substr(slash + 1);
  return rel.substr(0, slash);
}

bool IsDerUplink(std::string_view leaf) {
  return leaf == "birth" || leaf == "status" || leaf == "telemetry" || leaf == "response";
}
bool IsDerDownlink(std::string_view leaf) { return leaf == "control" || leaf == "cmd"; }

AclDecision CheckDer(std::string_view own_id, Access access, std::string_view topic) {
  if (access == Access::kSubscribe && HasWildcard(topic)) return Deny(kRuleDerWildcard);
  if (!StartsWith(topic, topics::kRoot)) return Deny(kRuleDerOutside);
  std::string_view rest;
  if (Head(topic.substr(topics::kRoot.size()), &rest) != "der") return Deny(kRuleDerOutside);
  std::string_view leaf;
  std::string_view id = Head(rest, &leaf);
  if (id != own_id) return Deny(kRuleDerOtherDer);
  switch (access) {
    case Access::kWrite:
      return IsDerUplink(leaf) ? kAllow : Deny(kRuleDerWrongLeaf);
    case Access::kRead:
    case Access::kSubscribe:
      return IsDerDownlink(leaf) ? kAllow : Deny(kRuleDerWrongLeaf);
    case Access::kUnsubscribe:
      return kAllow;
  }
  return Deny(kRuleDerOutside);
}

// What operators and dispatchers may read: a topic name (or, for a
// subscription, a filter: its wildcards are matched loosely, as READ checks
// every message it brings).
bool OperatorMayRead(std::string_view topic, const PluginOptions& o) {
  if (StartsWith(topic, o.reply_prefix)) return true;
  if (!StartsWith(topic, topics::kRoot)) return false;
  std::string_view rest;
  std::string_view head = Head(topic.substr(topics::kRoot.size()), &rest);
  if (head == "aggregator" || head == "grid" || head == "vder" || head == "events" ||
      head == "forecast" || head == "schedule" || head == "broker") {
    return true;
  }
  if (head != "der") return false;
  std::string_view leaf;
  Head(rest, &leaf);
  if (leaf.find('/') != std::string_view::npos) return false;
  // std::set<std::string>::count needs a std::string; leaves are short (SSO).
  return o.operator_der_leaves.count(std::string(leaf)) > 0;
}

bool DispatcherMayWrite(std::string_view topic) {
  if (!StartsWith(topic, topics::kRoot)) return false;
  std::string_view rel = topic.substr(topics::kRoot.size());
  std::string_view rest;
  std::string_view head = Head(rel, &rest);
  std::string_view leaf;
  std::string_view id = Head(rest, &leaf);
  if (head == "grid") return topics::IsValidId(id) && leaf == "status";
  if (head == "vder") return topics::IsValidId(id) && (leaf == "dispatch" || leaf == "curtail");
  if (head == "schedule") return rest == "request";
  if (head == "forecast") return !rest.empty();
  return false;
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kDer:
      return "der";
    case Role::kAggregator:
      return "aggregator";
    case Role::kOperator:
      return "operator";
    case Role::kDispatcher:
      return "dispatcher";
  }
  return "unknown";
}

std::optional<Identity> IdentityOf(const char* username, const PluginOptions& o) {
  if (username == nullptr || *username == '\0') {
    const std::string& r = o.anonymous_role;
    if (r == "aggregator") return Identity{Role::kAggregator, "anonymous"};
    if (r == "operator") return Identity{Role::kOperator, "anonymous"};
    if (r == "dispatcher") return Identity{Role::kDispatcher, "anonymous"};
    return std::nullopt;
  }
  std::string name(username);
  if (o.aggregators.count(name)) return Identity{Role::kAggregator, std::move(name)};
  if (o.operators.count(name)) return Identity{Role::kOperator, std::move(name)};
  if (o.dispatchers.count(name)) return Identity{Role::kDispatcher, std::move(name)};
  if (topics::IsValidId(name)) return Identity{Role::kDer, std::move(name)};
  return std::nullopt;
}

AclDecision CheckAcl(const Identity& who, Access access, std::string_view topic,
                     const PluginOptions& o) {
  if (who.role == Role::kDer) return CheckDer(who.name, access, topic);
  if (access == Access::kUnsubscribe) return kAllow;
  const bool broker_topic = StartsWith(topic, kBrokerPrefix);
  switch (who.role) {
    case Role::kAggregator:
      if (access == Access::kWrite) {
        if (broker_topic) return Deny(kRuleBrokerTopic);
        if (StartsWith(topic, topics::kRoot)) {
          std::string_view rest;
          if (Head(topic.substr(topics::kRoot.size()), &rest) == "der") {
            std::string_view leaf;
            Head(rest, &leaf);
            if (IsDerUplink(leaf)) return Deny(kRuleNotForRole);
          }
        }
        // Outside derms/v1/: answers on the response topics requesters name.
        return kAllow;
      }
      // Everything, replies included: requesters name their own response
      // topics (local tools given the aggregator role by anonymous_role wait
      // for answers there), and the aggregator is the trusted side.
      return kAllow;
    case Role::kOperator:
    case Role::kDispatcher:
      if (access == Access::kWrite) {
        if (who.role == Role::kOperator) return Deny(kRuleReadOnly);
        if (broker_topic) return Deny(kRuleBrokerTopic);
        return DispatcherMayWrite(topic) ? kAllow : Deny(kRuleNotForRole);
      }
      if (access == Access::kSubscribe && HasWildcard(topic)) {
        // A filter: anything under the root or the reply prefix; READ
        // decides message by message.
        return StartsWith(topic, topics::kRoot) || StartsWith(topic, o.reply_prefix)
                   ? kAllow
                   : Deny(kRuleNotForRole);
      }
      return OperatorMayRead(topic, o) ? kAllow : Deny(kRuleNotForRole);
    case Role::kDer:
      break;
  }
  return Deny(kRuleNoIdentity);
}

}  // namespace derms::broker
