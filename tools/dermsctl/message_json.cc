#include "tools/dermsctl/message_json.h"

#include <fmt/format.h>

#include <memory>

#include "cloud_aggregator/storage/query.h"
#include "common/codec.h"
#include "common/messages.h"
#include "common/topics.h"

namespace derms::dermsctl {

std::string DescribeMessage(const mqtt::Message& m) {
  const std::string topic = storage::JsonString(m.topic);
  auto parsed = topics::Parse(m.topic);
  if (!parsed.ok()) {
    return fmt::format("{{\"topic\":{},\"error\":{}}}", topic,
                       storage::JsonString(parsed.status().message()));
  }
  auto msg = NewMessageFor(parsed->kind);
  if (!msg) {
    // No schema yet for this topic: show the payload if it is JSON already.
    if (codec::LooksLikeJson(m.payload)) {
      return fmt::format("{{\"topic\":{},\"message\":{}}}", topic, m.payload);
    }
    return fmt::format("{{\"topic\":{},\"bytes\":{}}}", topic, m.payload.size());
  }
  if (m.payload.empty()) return fmt::format("{{\"topic\":{},\"cleared\":true}}", topic);
  Status s = IsDeviceTopic(parsed->kind) ? codec::ParseBinary(m.payload, m.topic, msg.get())
                                         : codec::ParseOperator(m.payload, m.topic, msg.get());
  if (!s.ok()) {
    return fmt::format("{{\"topic\":{},\"error\":{}}}", topic, storage::JsonString(s.message()));
  }
  return fmt::format("{{\"topic\":{},\"retained\":{},\"message\":{}}}", topic,
                     m.retained ? "true" : "false", codec::ToOperatorJson(*msg));
}

std::string DescribeReply(const mqtt::Message& m, const google::protobuf::Message& schema) {
  const std::string topic = storage::JsonString(m.topic);
  std::unique_ptr<google::protobuf::Message> msg(schema.New());
  Status s = codec::ParseOperator(m.payload, m.topic, msg.get());
  if (!s.ok()) {
    return fmt::format("{{\"topic\":{},\"error\":{}}}", topic, storage::JsonString(s.message()));
  }
  return fmt::format("{{\"topic\":{},\"retained\":false,\"message\":{}}}", topic,
                     codec::ToOperatorJson(*msg));
}

}  // namespace derms::dermsctl
