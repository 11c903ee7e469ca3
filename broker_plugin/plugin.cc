// The Mosquitto 2.0 plugin (interface version 5): registration and the
// adapters from Mosquitto's events to Guard (guard.h), which decides
// everything. Mosquitto calls all of this on its one main thread.
//
//   plugin /usr/lib/derms/derms_broker_plugin.so
//   plugin_opt_password_file /etc/mosquitto/derms.passwd
//   plugin_opt_aggregators aggregator
//   ...  (deploy/production/mosquitto.conf lists every option)
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "broker_plugin/guard.h"

namespace derms::broker {
namespace {

struct PluginState {
  mosquitto_plugin_id_t* id = nullptr;
  PluginOptions options;
  std::unique_ptr<Guard> guard;
};

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::vector<std::pair<std::string, std::string>> Pairs(const mosquitto_opt* options, int count) {
  std::vector<std::pair<std::string, std::string>> kv;
  for (int i = 0; i < count; ++i) {
    kv.emplace_back(options[i].key ? options[i].key : "", options[i].value ? options[i].value : "");
  }
  return kv;
}

std::string_view AccessName(int access) {
  switch (access) {
    case MOSQ_ACL_READ:
      return "read";
    case MOSQ_ACL_WRITE:
      return "publish";
    case MOSQ_ACL_SUBSCRIBE:
      return "subscribe";
    default:
      return "unsubscribe";
  }
}

int OnBasicAuth(int, void* event_data, void* userdata) {
  auto* state = static_cast<PluginState*>(userdata);
  auto* ev = static_cast<mosquitto_evt_basic_auth*>(event_data);
  switch (state->guard->Authenticate(ev->client, ev->username, ev->password)) {
    case Guard::AuthVerdict::kAllow:
      return MOSQ_ERR_SUCCESS;
    case Guard::AuthVerdict::kDefer:
      return MOSQ_ERR_PLUGIN_DEFER;
    case Guard::AuthVerdict::kDeny:
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "derms: refused CONNECT of user '%s' from %s",
                           ev->username ? ev->username : "(none)",
                           mosquitto_client_address(ev->client));
      return MOSQ_ERR_AUTH;
  }
  return MOSQ_ERR_AUTH;
}

int OnAclCheck(int, void* event_data, void* userdata) {
  auto* state = static_cast<PluginState*>(userdata);
  auto* ev = static_cast<mosquitto_evt_acl_check*>(event_data);
  Access access = Access::kUnsubscribe;
  switch (ev->access) {
    case MOSQ_ACL_READ:
      access = Access::kRead;
      break;
    case MOSQ_ACL_WRITE:
      access = Access::kWrite;
      break;
    case MOSQ_ACL_SUBSCRIBE:
      access = Access::kSubscribe;
      break;
    default:
      break;
  }
  const char* username = mosquitto_client_username(ev->client);
  Decision d = state->guard->CheckAcl(ev->client, username, access, ev->topic ? ev->topic : "");
  if (d.allowed) return MOSQ_ERR_SUCCESS;
  mosquitto_log_printf(access == Access::kRead ? MOSQ_LOG_DEBUG : MOSQ_LOG_NOTICE,
                       "derms: denied %s of '%s' to client '%s' (user '%s'): %.*s",
                       AccessName(ev->access).data(), ev->topic ? ev->topic : "",
                       mosquitto_client_id(ev->client), username ? username : "",
                       static_cast<int>(d.reason.size()), d.reason.data());
  return MOSQ_ERR_ACL_DENIED;
}

int OnMessage(int, void* event_data, void* userdata) {
  auto* state = static_cast<PluginState*>(userdata);
  auto* ev = static_cast<mosquitto_evt_message*>(event_data);
  const char* username = mosquitto_client_username(ev->client);
  Decision d = state->guard->CheckMessage(
      ev->client, username, ev->topic ? ev->topic : "",
      std::string_view(static_cast<const char*>(ev->payload), ev->payloadlen), WallMs(), MonoMs());
  if (d.allowed) return MOSQ_ERR_SUCCESS;
  if (!d.message.empty()) {
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "derms: refused a message from client '%s' on '%s': %s",
                         mosquitto_client_id(ev->client), ev->topic ? ev->topic : "",
                         d.message.c_str());
  }
  return MOSQ_ERR_ACL_DENIED;
}

int OnTick(int, void*, void* userdata) {
  auto* state = static_cast<PluginState*>(userdata);
  for (const auto& name : state->guard->TakeKicks()) {
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "derms: disconnecting der '%s' for flooding telemetry",
                         name.c_str());
    mosquitto_kick_client_by_username(name.c_str(), false);
  }
  if (auto json = state->guard->StatusIfDue(WallMs(), MonoMs())) {
    mosquitto_broker_publish_copy(nullptr, std::string(kStatusTopic).c_str(),
                                  static_cast<int>(json->size()), json->data(), 1, true, nullptr);
  }
  return MOSQ_ERR_SUCCESS;
}

int OnDisconnect(int, void* event_data, void* userdata) {
  auto* state = static_cast<PluginState*>(userdata);
  state->guard->OnDisconnect(static_cast<mosquitto_evt_disconnect*>(event_data)->client);
  return MOSQ_ERR_SUCCESS;
}

struct Registration {
  int event;
  MOSQ_FUNC_generic_callback cb;
};
constexpr Registration kCallbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, OnBasicAuth},  {MOSQ_EVT_ACL_CHECK, OnAclCheck},
    {MOSQ_EVT_MESSAGE, OnMessage},       {MOSQ_EVT_TICK, OnTick},
    {MOSQ_EVT_DISCONNECT, OnDisconnect},
};

void Unregister(PluginState* state, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    mosquitto_callback_unregister(state->id, kCallbacks[i].event, kCallbacks[i].cb, nullptr);
  }
}

}  // namespace
}  // namespace derms::broker

extern "C" {

__attribute__((visibility("default"))) int mosquitto_plugin_version(int supported_version_count,
                                                                    const int* supported_versions) {
  for (int i = 0; i < supported_version_count; ++i) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

__attribute__((visibility("default"))) int mosquitto_plugin_init(mosquitto_plugin_id_t* identifier,
                                                                 void** userdata,
                                                                 mosquitto_opt* options,
                                                                 int option_count) {
  using namespace derms::broker;
  auto parsed = ParseOptions(Pairs(options, option_count));
  if (!parsed.ok()) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "derms: %s", parsed.status().message().c_str());
    return MOSQ_ERR_INVAL;
  }
  std::optional<PasswordFile> passwords;
  if (!parsed->password_file.empty()) {
    auto file = PasswordFile::Load(parsed->password_file);
    if (!file.ok()) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "derms: %s", file.status().message().c_str());
      return MOSQ_ERR_INVAL;
    }
    passwords = std::move(file).value();
  }
  auto state = std::make_unique<PluginState>();
  state->id = identifier;
  state->options = *parsed;
  const size_t users = passwords ? passwords->size() : 0;
  state->guard = std::make_unique<Guard>(*parsed, std::move(passwords), WallMs());
  size_t registered = 0;
  for (const auto& r : kCallbacks) {
    // Without a password file, passwords are Mosquitto's business.
    if (r.event == MOSQ_EVT_BASIC_AUTH && parsed->password_file.empty()) {
      ++registered;
      continue;
    }
    int rc = mosquitto_callback_register(identifier, r.event, r.cb, nullptr, state.get());
    if (rc != MOSQ_ERR_SUCCESS) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "derms: cannot register callback for event %d: error %d",
                           r.event, rc);
      Unregister(state.get(), registered);
      return rc;
    }
    ++registered;
  }
  mosquitto_log_printf(
      MOSQ_LOG_NOTICE,
      "derms: broker plugin loaded (%zu users in the password file, %zu aggregators, %zu "
      "operators, %zu dispatchers; status every %lld s)",
      users, parsed->aggregators.size(), parsed->operators.size(), parsed->dispatchers.size(),
      static_cast<long long>(parsed->status_interval_s));
  *userdata = state.release();
  return MOSQ_ERR_SUCCESS;
}

__attribute__((visibility("default"))) int mosquitto_plugin_cleanup(void* userdata, mosquitto_opt*,
                                                                    int) {
  auto* state = static_cast<derms::broker::PluginState*>(userdata);
  if (state == nullptr) return MOSQ_ERR_SUCCESS;
  derms::broker::Unregister(state, std::size(derms::broker::kCallbacks));
  delete state;
  return MOSQ_ERR_SUCCESS;
}

}  // extern "C"
