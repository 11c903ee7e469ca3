// How dermsctl prints a message it received: one line of JSON.
#ifndef DERMS_TOOLS_DERMSCTL_MESSAGE_JSON_H_
#define DERMS_TOOLS_DERMSCTL_MESSAGE_JSON_H_

#include <google/protobuf/message.h>

#include <string>

#include "common/mqtt/mqtt_client.h"

namespace derms::dermsctl {

// Renders `m` as one JSON object, without a newline:
//   {"topic":T,"retained":B,"message":{...}}  decoded by its topic's schema
//   {"topic":T,"cleared":true}                 an empty (retained-clearing) payload
//   {"topic":T,"message":{...}}                no schema, but the payload is JSON
//   {"topic":T,"bytes":N}                      no schema, not JSON
//   {"topic":T,"error":"..."}                  not a derms topic, or undecodable
std::string DescribeMessage(const mqtt::Message& m);
// The same for an answer on a topic outside the contract (a response
// topic), decoded as `schema`.
std::string DescribeReply(const mqtt::Message& m, const google::protobuf::Message& schema);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_MESSAGE_JSON_H_
