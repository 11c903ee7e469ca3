// dermsctl's connection to the broker: one clean MQTT 5 session per command,
// and what the commands do with it: print the messages that arrive (one JSON
// line each, see message_json.h), and publish a request and print its answers.
#ifndef DERMS_TOOLS_DERMSCTL_BROKER_SESSION_H_
#define DERMS_TOOLS_DERMSCTL_BROKER_SESSION_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

#include "common/blocking_queue.h"
#include "common/mqtt/mqtt_client.h"
#include "common/status.h"

namespace derms::dermsctl {

// --broker, --username, --password: where and as whom to connect.
struct BrokerFlags {
  std::string uri = "tcp://127.0.0.1:1883";
  std::string username;  // empty: anonymous
  std::string password;
  std::string ca_file;  // TLS (ssl:// URIs): --ca-file, --cert-file, --key-file
  std::string cert_file;
  std::string key_file;
};

// When PrintArriving stops, besides SIGINT or SIGTERM.
struct PrintUntil {
  // Seconds from the call; <= 0: no deadline.
  double wait_s = 5;
  // After this many messages; <= 0: no limit.
  int count = 0;
  // After the message this says is the last one; empty: none is.
  std::function<bool(const mqtt::Message&)> is_final;
  // The reason when a message says the request was refused (or failed);
  // "" when it does not. Empty: no answer is a refusal.
  std::function<std::string(const mqtt::Message&)> refusal;
};

// One command's session. Used by one thread; messages of its subscriptions
// are queued (on Paho's thread) until Next or PrintArriving takes them.
class BrokerSession {
 public:
  // Connects a fresh, clean session as "dermsctl-PID", and from then on lets
  // SIGINT and SIGTERM stop PrintArriving instead of the process.
  [[nodiscard]] static StatusOr<std::unique_ptr<BrokerSession>> Open(const BrokerFlags& flags);
  // Disconnects.
  ~BrokerSession();
  BrokerSession(const BrokerSession&) = delete;
  BrokerSession& operator=(const BrokerSession&) = delete;

  // Subscribes at QoS 1 and waits for the broker's acknowledgement.
  [[nodiscard]] Status Subscribe(const std::vector<std::string>& filters);
  // Publishes at QoS 1, not retained, and waits for the acknowledgement;
  // with a `response_topic`, as an MQTT 5 request answered there.
  [[nodiscard]] Status Publish(const std::string& topic, const std::string& payload,
                               const std::string& response_topic = "",
                               const std::string& correlation_data = "");
  // A topic of this session's own for answers ("dermsctl/PID/reply").
  static std::string ReplyTopic();
  // The next message to arrive within `timeout`, if any.
  std::optional<mqtt::Message> Next(std::chrono::milliseconds timeout);
  // Prints each arriving message on stdout as a JSON line until `until` or a
  // stop signal says to stop. Returns how many it printed. An answer
  // arriving twice in a row with the same payload (on the result topic and
  // the response topic) is printed once. Messages on ReplyTopic() are
  // decoded as `reply_schema` when given. `refusal`, when given, receives
  // the reason of the last message `until.refusal` says refused.
  int PrintArriving(const PrintUntil& until, const google::protobuf::Message* reply_schema = nullptr,
                    std::string* refusal = nullptr);
  // True once SIGINT or SIGTERM has come.
  bool Stopped() const { return stop_; }

 private:
  explicit BrokerSession(const std::atomic<bool>& stop) : stop_(stop) {}

  const std::atomic<bool>& stop_;
  // Before client_, so that the client (and its handler) is gone first.
  BlockingQueue<mqtt::Message> inbox_;
  std::unique_ptr<mqtt::Client> client_;
};

// Publishes `payload` on `topic` and prints "published TOPIC". With an
// `answer_filter` (subscribed to before publishing) and `until.wait_s` > 0,
// then prints the answers arriving there as `until` says. With a
// `reply_schema`, the request also carries a response topic of the
// session's own (subscribed to first), where the aggregator answers even a
// request it refused before reading it; answers there are decoded as that
// message. Returns the exit code: 0, or kExitFailure with a message naming
// `command` when the broker fails, no answer came in time, or an answer
// refused the request (`until.refusal`; its reason is printed).
int PublishRequest(std::string_view command, const BrokerFlags& flags, const std::string& topic,
                   const std::string& payload, const std::string& answer_filter,
                   const PrintUntil& until,
                   const google::protobuf::Message* reply_schema = nullptr);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_BROKER_SESSION_H_
