#include "tools/dermsctl/broker_session.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdint>
#include <iostream>
#include <vector>

#include "common/signals.h"
#include "tools/dermsctl/arguments.h"
#include "tools/dermsctl/message_json.h"

namespace derms::dermsctl {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kBrokerTimeout(5000);

}  // namespace

StatusOr<std::unique_ptr<BrokerSession>> BrokerSession::Open(const BrokerFlags& flags) {
  std::unique_ptr<BrokerSession> session(new BrokerSession(InstallStopSignals()));
  auto client = mqtt::Client::Create(flags.uri, fmt::format("dermsctl-{}", ::getpid()));
  if (!client.ok()) return client.status();
  session->client_ = std::move(client).value();
  BlockingQueue<mqtt::Message>* inbox = &session->inbox_;
  session->client_->SetMessageHandler([inbox](mqtt::Message m) { inbox->Push(std::move(m)); });
  mqtt::ConnectOptions options;
  options.username = flags.username;
  options.password = flags.password;
  options.ca_file = flags.ca_file;
  options.cert_file = flags.cert_file;
  options.key_file = flags.key_file;
  Status s = session->client_->Connect(options, kBrokerTimeout);
  if (!s.ok()) return s;
  return session;
}

BrokerSession::~BrokerSession() {
  if (client_) client_->Disconnect();
}

Status BrokerSession::Subscribe(const std::vector<std::string>& filters) {
  return client_->Subscribe(filters, 1, kBrokerTimeout);
}

Status BrokerSession::Publish(const std::string& topic, const std::string& payload,
                              const std::string& response_topic,
                              const std::string& correlation_data) {
  return client_->PublishAndWait(
      mqtt::Message{topic, payload, 1, false, response_topic, correlation_data}, kBrokerTimeout);
}

std::string BrokerSession::ReplyTopic() { return fmt::format("dermsctl/{}/reply", ::getpid()); }

std::optional<mqtt::Message> BrokerSession::Next(milliseconds timeout) {
  return inbox_.PopFor(timeout);
}

int BrokerSession::PrintArriving(const PrintUntil& until,
                                 const google::protobuf::Message* reply_schema,
                                 std::string* refusal) {
  const auto deadline =
      std::chrono::steady_clock::now() + milliseconds(static_cast<int64_t>(until.wait_s * 1000));
  const std::string reply_topic = ReplyTopic();
  int printed = 0;
  std::string last_payload;
  while (!stop_ && (until.count <= 0 || printed < until.count)) {
    if (until.wait_s > 0 && std::chrono::steady_clock::now() >= deadline) break;
    auto m = inbox_.PopFor(milliseconds(100));
    if (!m) continue;
    const bool repeated = printed > 0 && m->payload == last_payload;
    if (!repeated) {
      std::cout << (reply_schema != nullptr && m->topic == reply_topic
                        ? DescribeReply(*m, *reply_schema)
                        : DescribeMessage(*m))
                << std::endl;
      ++printed;
      last_payload = m->payload;
      if (until.refusal && refusal != nullptr) *refusal = until.refusal(*m);
    }
    if (until.is_final && until.is_final(*m)) break;
  }
  return printed;
}

int PublishRequest(std::string_view command, const BrokerFlags& flags, const std::string& topic,
                   const std::string& payload, const std::string& answer_filter,
                   const PrintUntil& until, const google::protobuf::Message* reply_schema) {
  auto session = BrokerSession::Open(flags);
  if (!session.ok()) return Fail(command, session.status().message());
  std::vector<std::string> filters;
  if (reply_schema != nullptr) filters.push_back(BrokerSession::ReplyTopic());
  if (!answer_filter.empty()) filters.push_back(answer_filter);
  if (!filters.empty()) {
    Status s = (*session)->Subscribe(filters);
    if (!s.ok()) return Fail(command, s.message());
  }
  Status s = reply_schema != nullptr
                 ? (*session)->Publish(topic, payload, BrokerSession::ReplyTopic(),
                                       fmt::format("{}-{}", ::getpid(), topic))
                 : (*session)->Publish(topic, payload);
  if (!s.ok()) return Fail(command, s.message());
  fmt::print("published {}\n", topic);
  if (filters.empty() || until.wait_s <= 0) return 0;
  std::string refusal;
  if ((*session)->PrintArriving(until, reply_schema, &refusal) > 0) {
    return refusal.empty() ? 0 : Fail(command, refusal);
  }
  if ((*session)->Stopped()) {
    return Fail(command, fmt::format("stopped before an answer came on '{}'", answer_filter));
  }
  return Fail(command, fmt::format("no answer on '{}' within {} s", answer_filter, until.wait_s));
}

}  // namespace derms::dermsctl
