// The plugin's decisions in one place, with no Mosquitto in it: who may
// connect (the password file), what each client may publish, subscribe to
// and read (policy.h), whether a payload on der/... is well formed
// (payload_check.h), whether a DER's telemetry comes too fast
// (rate_limiter.h), and the counters and the JSON of derms/v1/broker/status.
// plugin.cc adapts Mosquitto's callbacks to these calls.
//
// A client is known by an opaque key (Mosquitto's client pointer), valid
// from its first call until OnDisconnect. Not thread-safe: Mosquitto calls
// plugins from its one main thread.
#ifndef DERMS_BROKER_PLUGIN_GUARD_H_
#define DERMS_BROKER_PLUGIN_GUARD_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "broker_plugin/options.h"
#include "broker_plugin/password_file.h"
#include "broker_plugin/payload_check.h"
#include "broker_plugin/policy.h"
#include "broker_plugin/rate_limiter.h"

namespace derms::broker {

inline constexpr std::string_view kStatusTopic = "derms/v1/broker/status";

// What was decided and, for a refusal, why (for the broker's log).
struct Decision {
  bool allowed = true;
  std::string_view reason;  // a counting key: a rule, a payload reason, "rate_limited"
  std::string message;      // set for payload refusals: names the DER, the field and the rule
};

class Guard {
 public:
  // `passwords`: the loaded password file, when options.password_file is set.
  Guard(PluginOptions options, std::optional<PasswordFile> passwords, int64_t now_ms);

  enum class AuthVerdict { kAllow, kDeny, kDefer };
  // CONNECT with a user name and password. kDefer when there is no password
  // file, or for a client without a user name when anonymous clients have a
  // role (Mosquitto's allow_anonymous decides).
  AuthVerdict Authenticate(const void* client, const char* username, const char* password);

  // Every publish, subscribe, unsubscribe and delivery: `topic` is a topic
  // name or a subscription filter. `username` is the client's current one.
  Decision CheckAcl(const void* client, const char* username, Access access,
                    std::string_view topic);

  // A message a client published (after CheckAcl allowed it): payload
  // validation on der/..., then the telemetry rate limit. `wall_ms` for
  // timestamps, `mono_ms` for rates.
  Decision CheckMessage(const void* client, const char* username, std::string_view topic,
                        std::string_view payload, int64_t wall_ms, int64_t mono_ms);

  void OnDisconnect(const void* client);

  // DERs to disconnect for flooding (kick_after_drops), taken once.
  std::vector<std::string> TakeKicks();

  // The JSON of broker/status when one is due at `mono_ms` (every
  // status_interval_s), else nullopt.
  std::optional<std::string> StatusIfDue(int64_t wall_ms, int64_t mono_ms);
  std::string RenderStatus(int64_t wall_ms) const;

  // Counters, for tests and the status.
  struct Counters {
    uint64_t auth_accepted = 0;
    uint64_t auth_refused = 0;
    uint64_t messages_checked = 0;   // on der/...
    uint64_t messages_accepted = 0;  // on der/..., valid and within rate
    std::map<std::string, uint64_t, std::less<>> rejected_by_reason;
    std::map<std::string, uint64_t, std::less<>> acl_denied_by_rule;
    uint64_t rate_limited = 0;
    uint64_t kicked = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Client {
    std::optional<Identity> identity;
  };
  struct Offender {
    uint64_t rejected = 0;
    uint64_t acl_denied = 0;
    uint64_t rate_limited = 0;
    uint64_t total() const { return rejected + acl_denied + rate_limited; }
  };
  Client& ClientFor(const void* client, const char* username);
  Offender* OffenderFor(const Client& c);

  PluginOptions options_;
  std::optional<PasswordFile> passwords_;
  PayloadChecker checker_;
  TelemetryRateLimiter limiter_;
  std::unordered_map<const void*, Client> clients_;
  std::unordered_map<std::string, Offender> offenders_;
  std::vector<std::string> kicks_;
  Counters counters_;
  int64_t started_at_ms_;
  int64_t next_status_mono_ms_ = 0;
};

}  // namespace derms::broker

#endif  // DERMS_BROKER_PLUGIN_GUARD_H_
