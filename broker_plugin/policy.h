// Who a client is (its role, and for a DER its der_id) and what it may do:
// the plugin's topic rules, pure and allocation-free on the hot path (READ
// checks run for every message delivered to every subscriber).
//
//   DER        publish der/{own id}/birth|status|telemetry|response;
//              subscribe to and read der/{own id}/control|cmd; nothing else.
//   aggregator read and subscribe to everything (response topics are the
//              requesters' choice); publish everything but a DER's uplink
//              topics and broker/status.
//   operator   read-only: aggregator/, grid/, vder/, events/, forecast/,
//              schedule/, broker/status, der/+/<leaf> for the configured
//              leaves, and reply topics.
//   dispatcher publish grid/+/status, vder/+/dispatch, vder/+/curtail,
//              schedule/request, forecast/...; read what an operator reads.
// Everything else is denied, and each denial names the rule that denied it.
#ifndef DERMS_BROKER_PLUGIN_POLICY_H_
#define DERMS_BROKER_PLUGIN_POLICY_H_

#include <optional>
#include <string>
#include <string_view>

#include "broker_plugin/options.h"

namespace derms::broker {

enum class Role { kDer, kAggregator, kOperator, kDispatcher };
std::string_view RoleName(Role role);

struct Identity {
  Role role = Role::kDer;
  std::string name;  // the user name; for a DER, its der_id
};

// The identity of an authenticated `username`; nullptr or empty is
// anonymous, with options.anonymous_role (named "anonymous") or none. A name in no role list is a
// DER when it is a valid identifier; otherwise nullopt.
std::optional<Identity> IdentityOf(const char* username, const PluginOptions& options);

enum class Access { kRead, kWrite, kSubscribe, kUnsubscribe };

struct AclDecision {
  bool allowed = false;
  // Why it was denied, a stable key for counting ("der_other_der", ...);
  // empty when allowed.
  std::string_view rule;
};

// Rules for denials (the keys of broker/status's acl_denied_by_rule).
inline constexpr std::string_view kRuleNoIdentity = "no_identity";
inline constexpr std::string_view kRuleDerOtherDer = "der_other_der";    // another DER's topics
inline constexpr std::string_view kRuleDerWrongLeaf = "der_wrong_leaf";  // own, wrong direction
inline constexpr std::string_view kRuleDerOutside = "der_outside";       // not under der/{id}/
inline constexpr std::string_view kRuleDerWildcard =
    "der_wildcard";                                             // a DER subscribing with + or #
inline constexpr std::string_view kRuleReadOnly = "read_only";  // an operator publishing
inline constexpr std::string_view kRuleNotForRole = "not_for_role";   // none of the role's topics
inline constexpr std::string_view kRuleBrokerTopic = "broker_topic";  // only the plugin writes it

// `topic` is a topic name (kRead, kWrite) or a subscription filter
// (kSubscribe, kUnsubscribe). Pure; any thread.
AclDecision CheckAcl(const Identity& who, Access access, std::string_view topic,
                     const PluginOptions& options);

}  // namespace derms::broker

#endif  // DERMS_BROKER_PLUGIN_POLICY_H_
