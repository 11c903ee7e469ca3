#include "common/mqtt/mqtt_client.h"

#include <fmt/format.h>
#include <mqtt/async_client.h>

namespace derms::mqtt {

namespace detail {
struct PahoClient : ::mqtt::async_client {
  using ::mqtt::async_client::async_client;
};
struct PahoToken {
  explicit PahoToken(::mqtt::token_ptr t) : token(std::move(t)) {}
  ::mqtt::token_ptr token;
};
}  // namespace detail

namespace {

constexpr int kMaxQueuedPublishes = 1 << 20;

std::shared_ptr<detail::PahoToken> Wrap(::mqtt::token_ptr t) {
  return std::make_shared<detail::PahoToken>(std::move(t));
}

Status FromException(const std::string& what, const ::mqtt::exception& e) {
  return Status::Error("mqtt_error",
                       fmt::format("{}: {} (return code {}, reason code {})", what,
                                   e.get_message().empty() ? e.what() : e.get_message(),
                                   e.get_return_code(), e.get_reason_code()));
}

::mqtt::const_message_ptr ToPaho(const Message& m) {
  auto msg = ::mqtt::make_message(m.topic, m.payload.data(), m.payload.size(), m.qos, m.retained);
  if (m.response_topic.empty() && m.correlation_data.empty()) return msg;
  ::mqtt::properties props;
  if (!m.response_topic.empty()) {
    props.add(::mqtt::property(::mqtt::property::RESPONSE_TOPIC, m.response_topic));
  }
  if (!m.correlation_data.empty()) {
    props.add(::mqtt::property(::mqtt::property::CORRELATION_DATA, m.correlation_data));
  }
  msg->set_properties(std::move(props));
  return msg;
}

Message FromPaho(const ::mqtt::const_message_ptr& msg) {
  Message m;
  m.topic = msg->get_topic();
  m.payload = msg->get_payload_str();
  m.qos = msg->get_qos();
  m.retained = msg->is_retained();
  const auto& props = msg->get_properties();
  if (props.contains(::mqtt::property::RESPONSE_TOPIC)) {
    m.response_topic = ::mqtt::get<std::string>(props, ::mqtt::property::RESPONSE_TOPIC);
  }
  if (props.contains(::mqtt::property::CORRELATION_DATA)) {
    m.correlation_data = ::mqtt::get<std::string>(props, ::mqtt::property::CORRELATION_DATA);
  }
  return m;
}

}  // namespace

Pending::State Pending::Poll(Status* error) const {
  if (!start_error_.ok()) {
    if (error) *error = start_error_;
    return State::kFailed;
  }
  bool all_done = true;
  for (const auto& holder : tokens_) {
    const auto& t = holder->token;
    if (!t->is_complete()) {
      all_done = false;
      continue;
    }
    int rc = t->get_return_code();
    int reason = t->get_reason_code();
    // MQTT 5 reason codes >= 0x80 are failures, including refused subscriptions.
    if (rc != 0 || reason >= 0x80) {
      if (error) {
        *error = Status::Error(
            "mqtt_error",
            fmt::format("{} failed (return code {}, reason code {})", what_, rc, reason));
      }
      return State::kFailed;
    }
  }
  return all_done ? State::kDone : State::kRunning;
}

Status Pending::Wait(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& t : tokens_) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left < std::chrono::milliseconds(0)) left = std::chrono::milliseconds(0);
    try {
      t->token->wait_for(std::chrono::duration_cast<std::chrono::milliseconds>(left));
    } catch (const ::mqtt::exception& e) {
      return FromException(what_, e);
    }
  }
  Status error;
  switch (Poll(&error)) {
    case State::kDone:
      return Status::Ok();
    case State::kFailed:
      return error;
    case State::kRunning:
      break;
  }
  return Status::Error("mqtt_timeout", fmt::format("{}: no answer from the broker within {} ms",
                                                   what_, timeout.count()));
}

bool Pending::SessionPresent() const {
  if (tokens_.empty() || !tokens_.front()->token->is_complete()) return false;
  try {
    return tokens_.front()->token->get_connect_response().is_session_present();
  } catch (const ::mqtt::exception&) {
    return false;
  }
}

StatusOr<std::unique_ptr<Client>> Client::Create(const std::string& broker_uri,
                                                 const std::string& client_id,
                                                 int buffer_while_offline) {
  try {
    ::mqtt::create_options opts(MQTTVERSION_5);
    // Paho C counts every publish not yet handed to the socket against this
    // limit, connected or not (default 100): a dispatch run publishing
    // thousands of controls at once must not hit it.
    opts.set_max_buffered_messages(
        buffer_while_offline > kMaxQueuedPublishes ? buffer_while_offline : kMaxQueuedPublishes);
    opts.set_send_while_disconnected(buffer_while_offline > 0);
    auto client = std::make_unique<detail::PahoClient>(broker_uri, client_id, opts, nullptr);
    return std::unique_ptr<Client>(new Client(std::move(client), client_id));
  } catch (const ::mqtt::exception& e) {
    return FromException(fmt::format("broker URI '{}' client id '{}'", broker_uri, client_id), e);
  }
}

Client::Client(std::unique_ptr<detail::PahoClient> client, std::string client_id)
    : client_(std::move(client)), client_id_(std::move(client_id)) {
  client_->set_message_callback([this](::mqtt::const_message_ptr msg) {
    std::lock_guard<std::mutex> lock(handlers_mutex_);
    if (on_message_) on_message_(FromPaho(msg));
  });
  client_->set_connection_lost_handler([this](const std::string& cause) {
    std::lock_guard<std::mutex> lock(handlers_mutex_);
    if (on_connection_lost_) on_connection_lost_(cause);
  });
}

Client::~Client() {
  ClearHandlers();
  try {
    client_->disable_callbacks();
    if (client_->is_connected()) client_->disconnect(0)->wait_for(std::chrono::milliseconds(500));
  } catch (const ::mqtt::exception&) {
    // Closing anyway; nothing useful to do with a failure here.
  }
}

void Client::SetMessageHandler(std::function<void(Message)> handler) {
  std::lock_guard<std::mutex> lock(handlers_mutex_);
  on_message_ = std::move(handler);
}

void Client::SetConnectionLostHandler(std::function<void(const std::string&)> handler) {
  std::lock_guard<std::mutex> lock(handlers_mutex_);
  on_connection_lost_ = std::move(handler);
}

void Client::ClearHandlers() {
  std::lock_guard<std::mutex> lock(handlers_mutex_);
  on_message_ = nullptr;
  on_connection_lost_ = nullptr;
}

Pending Client::StartConnect(const ConnectOptions& options) {
  Pending pending;
  pending.what_ =
      fmt::format("connect of client '{}' to {}", client_id_, client_->get_server_uri());
  try {
    auto builder = ::mqtt::connect_options_builder()
                       .mqtt_version(MQTTVERSION_5)
                       .clean_start(options.clean_start)
                       .keep_alive_interval(std::chrono::seconds(options.keep_alive_s))
                       .connect_timeout(std::chrono::seconds(options.connect_timeout_s))
                       .automatic_reconnect(false);
    ::mqtt::properties props;
    props.add(::mqtt::property(::mqtt::property::SESSION_EXPIRY_INTERVAL,
                               static_cast<int32_t>(options.session_expiry_s)));
    builder.properties(props);
    if (!options.username.empty()) builder.user_name(options.username);
    if (!options.password.empty()) builder.password(options.password);
    if (!options.ca_file.empty() || !options.cert_file.empty() || !options.key_file.empty()) {
      ::mqtt::ssl_options ssl;
      if (!options.ca_file.empty()) ssl.set_trust_store(options.ca_file);
      if (!options.cert_file.empty()) ssl.set_key_store(options.cert_file);
      if (!options.key_file.empty()) ssl.set_private_key(options.key_file);
      ssl.set_enable_server_cert_auth(true);
      builder.ssl(std::move(ssl));
    }
    if (options.will) {
      const Message& w = *options.will;
      builder.will(::mqtt::message(w.topic, w.payload.data(), w.payload.size(), w.qos, w.retained));
    }
    pending.tokens_.push_back(Wrap(client_->connect(builder.finalize())));
  } catch (const ::mqtt::exception& e) {
    pending.start_error_ = FromException(pending.what_, e);
  }
  return pending;
}

Pending Client::StartSubscribe(const std::vector<std::string>& filters, int qos) {
  Pending pending;
  pending.what_ =
      fmt::format("subscribe of client '{}' to {} filter(s)", client_id_, filters.size());
  try {
    // One SUBSCRIBE per filter: Paho reports a per-filter refusal reliably this way.
    for (const auto& f : filters) pending.tokens_.push_back(Wrap(client_->subscribe(f, qos)));
  } catch (const ::mqtt::exception& e) {
    pending.start_error_ = FromException(pending.what_, e);
  }
  return pending;
}

Status Client::Connect(const ConnectOptions& options, std::chrono::milliseconds timeout,
                       bool* session_present) {
  Pending p = StartConnect(options);
  Status s = p.Wait(timeout);
  if (s.ok() && session_present) *session_present = p.SessionPresent();
  return s;
}

Status Client::Subscribe(const std::vector<std::string>& filters, int qos,
                         std::chrono::milliseconds timeout) {
  return StartSubscribe(filters, qos).Wait(timeout);
}

std::shared_ptr<detail::PahoToken> Client::PublishToken(const Message& message, Status* error) {
  try {
    return Wrap(client_->publish(ToPaho(message)));
  } catch (const ::mqtt::exception& e) {
    *error = FromException(fmt::format("publish to '{}'", message.topic), e);
    return nullptr;
  }
}

Status Client::Publish(const Message& message) {
  Status error;
  PublishToken(message, &error);
  return error;
}

Pending Client::StartPublish(const Message& message) {
  Pending p;
  p.what_ = fmt::format("publish to '{}'", message.topic);
  auto token = PublishToken(message, &p.start_error_);
  if (token) p.tokens_.push_back(token);
  return p;
}

Status Client::PublishAndWait(const Message& message, std::chrono::milliseconds timeout) {
  return StartPublish(message).Wait(timeout);
}

void Client::Disconnect(std::chrono::milliseconds timeout) {
  try {
    if (client_->is_connected()) client_->disconnect()->wait_for(timeout);
  } catch (const ::mqtt::exception&) {
    // Already gone: that is what was asked for.
  }
}

bool Client::IsConnected() const { return client_->is_connected(); }

}  // namespace derms::mqtt
