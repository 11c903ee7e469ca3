// Which protobuf message each topic of the contract carries.
#ifndef DERMS_COMMON_MESSAGES_H_
#define DERMS_COMMON_MESSAGES_H_

#include <google/protobuf/message.h>

#include <memory>

#include "common/topics.h"

namespace derms {

// A new, empty message of the type `kind` carries; nullptr for topics whose
// payload is not yet defined by the contract (events, forecasts, schedules).
std::unique_ptr<google::protobuf::Message> NewMessageFor(topics::Kind kind);

// True for device-facing topics (der/...), which carry protobuf binary only.
bool IsDeviceTopic(topics::Kind kind);

}  // namespace derms

#endif  // DERMS_COMMON_MESSAGES_H_
