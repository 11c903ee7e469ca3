// Keeps a Client connected: connect, subscribe when the broker kept no
// session, report "online" once, and on loss back off (doubling, with
// jitter) and start again. Non-blocking: Step() from the owner's loop.
#ifndef DERMS_COMMON_MQTT_SESSION_H_
#define DERMS_COMMON_MQTT_SESSION_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/mqtt/mqtt_client.h"

namespace derms::mqtt {

struct SessionOptions {
  std::vector<std::string> filters;  // subscribed at QoS 1 when there is no session
  int64_t reconnect_min_ms = 500;    // first backoff, wall time
  int64_t reconnect_max_ms = 30000;  // backoff ceiling
  uint32_t jitter_seed = 1;
};

// Not thread-safe: one owner loop calls Step and MarkLost.
class Session {
 public:
  enum class Event { kNone, kOnline, kLost };
  // Installs `client`'s connection-lost handler. REQUIRES: client outlives this.
  Session(Client* client, SessionOptions options);

  // Advances the connection. `prepare` fills the options of each new connect
  // attempt (e.g. a will carrying a new bd_seq); it may fail, which backs off.
  // Returns kOnline on the step that completes a connection (publish births
  // then) and kLost on the step that notices a loss.
  Event Step(const std::function<Status(ConnectOptions*)>& prepare);
  // The owner found the connection unusable (e.g. a birth publish failed).
  void MarkLost(const std::string& why);
  bool online() const { return state_ == State::kOnline; }
  const std::string& last_error() const { return last_error_; }

 private:
  enum class State { kDisconnected, kConnecting, kSubscribing, kOnline };
  void Backoff(const std::string& why);

  Client* client_;
  SessionOptions options_;
  State state_ = State::kDisconnected;
  Pending pending_;
  std::chrono::steady_clock::time_point next_attempt_{};
  int64_t backoff_ms_;
  std::mt19937 rng_;
  std::atomic<bool> lost_{false};  // set on Paho's callback thread
  std::string last_error_;
};

}  // namespace derms::mqtt

#endif  // DERMS_COMMON_MQTT_SESSION_H_
