// The project's MQTT 5 client: a thin wrapper around Paho's async_client that
// keeps Paho's types and exceptions out of everything else. Every Paho
// exception is caught here and returned as a Status that keeps the MQTT reason
// code. Handlers run on Paho's single callback thread for the whole process:
// they must only hand work off (see BlockingQueue), never block.
#ifndef DERMS_COMMON_MQTT_MQTT_CLIENT_H_
#define DERMS_COMMON_MQTT_MQTT_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace derms::mqtt {

namespace detail {
// Paho's types, defined only in mqtt_client.cc so that no Paho name (nor
// Paho's global ::mqtt namespace) reaches code that includes this header.
struct PahoClient;
struct PahoToken;
}  // namespace detail

struct Message {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retained = false;
  // MQTT 5 request/response properties; empty when absent.
  std::string response_topic;
  std::string correlation_data;
};

struct ConnectOptions {
  std::string username;  // empty: anonymous
  std::string password;
  // TLS, for ssl:// and mqtts:// broker URIs: the CA certificate that signed
  // the broker's, and this client's certificate and private key when the
  // broker asks for one (with use_identity_as_username, the certificate's CN
  // is the user name). Empty: not used.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // false keeps the broker session (subscriptions, queued QoS 1 messages)
  // across reconnects for `session_expiry_s`.
  bool clean_start = true;
  uint32_t session_expiry_s = 0;
  int keep_alive_s = 30;
  int connect_timeout_s = 5;
  std::optional<Message> will;
};

// An operation started on the broker and not yet known to have finished.
class Pending {
 public:
  enum class State { kRunning, kDone, kFailed };
  Pending() = default;
  // kDone or kFailed once the broker has answered; `error` says why it failed.
  State Poll(Status* error = nullptr) const;
  // Blocks up to `timeout`. Ok, or the failure (a timeout is "mqtt_timeout").
  Status Wait(std::chrono::milliseconds timeout) const;
  // For a finished connect: whether the broker kept our session.
  bool SessionPresent() const;

 private:
  friend class Client;
  std::vector<std::shared_ptr<detail::PahoToken>> tokens_;
  std::string what_;
  Status start_error_;  // set when the operation could not even start
};

// Thread-safe: Publish, IsConnected and the Start* calls may be made from any
// thread. Handlers must be set before the first Connect.
class Client {
 public:
  // Creates an MQTT 5 client for `broker_uri` (tcp://host:port, mqtt://...).
  // `buffer_while_offline` > 0 lets Publish queue that many messages while
  // disconnected (Paho delivers them on reconnect).
  static StatusOr<std::unique_ptr<Client>> Create(const std::string& broker_uri,
                                                  const std::string& client_id,
                                                  int buffer_while_offline = 0);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void SetMessageHandler(std::function<void(Message)> handler);
  void SetConnectionLostHandler(std::function<void(const std::string& cause)> handler);
  // Removes both handlers; once it returns none is running or will run. An
  // owner whose handlers touch its own members calls this first in its
  // destructor, before those members are gone.
  void ClearHandlers();

  Pending StartConnect(const ConnectOptions& options);
  Pending StartSubscribe(const std::vector<std::string>& filters, int qos);
  // Blocking forms of the above.
  Status Connect(const ConnectOptions& options, std::chrono::milliseconds timeout,
                 bool* session_present = nullptr);
  Status Subscribe(const std::vector<std::string>& filters, int qos,
                   std::chrono::milliseconds timeout);

  // Starts delivering `message`; the Pending completes when the broker
  // acknowledges it (QoS 1 and 2) or when it is written (QoS 0).
  Pending StartPublish(const Message& message);
  // Queues `message` for delivery without waiting; an error when the client
  // is disconnected (and not buffering) or the arguments are refused.
  Status Publish(const Message& message);
  // Publishes and waits for the broker's acknowledgement (QoS 1 and 2).
  Status PublishAndWait(const Message& message, std::chrono::milliseconds timeout);

  // Sends DISCONNECT (the will is not published). Safe when disconnected.
  void Disconnect(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
  bool IsConnected() const;
  const std::string& client_id() const { return client_id_; }

 private:
  Client(std::unique_ptr<detail::PahoClient> client, std::string client_id);
  std::shared_ptr<detail::PahoToken> PublishToken(const Message& message, Status* error);

  std::unique_ptr<detail::PahoClient> client_;
  std::string client_id_;
  // Called on Paho's thread under handlers_mutex_, so ClearHandlers can wait
  // out a call in progress.
  std::mutex handlers_mutex_;
  std::function<void(Message)> on_message_;                     // GUARDED_BY(handlers_mutex_)
  std::function<void(const std::string&)> on_connection_lost_;  // GUARDED_BY(handlers_mutex_)
};

}  // namespace derms::mqtt

#endif  // DERMS_COMMON_MQTT_MQTT_CLIENT_H_
