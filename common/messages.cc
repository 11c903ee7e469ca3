#include "common/messages.h"

#include "derms/v1/derms.pb.h"

namespace derms {

std::unique_ptr<google::protobuf::Message> NewMessageFor(topics::Kind kind) {
  using topics::Kind;
  switch (kind) {
    case Kind::kDerBirth:
      return std::make_unique<v1::DerBirth>();
    case Kind::kDerStatus:
      return std::make_unique<v1::DerStatus>();
    case Kind::kDerTelemetry:
      return std::make_unique<v1::Telemetry>();
    case Kind::kDerControl:
      return std::make_unique<v1::Control>();
    case Kind::kDerResponse:
      return std::make_unique<v1::ControlResponse>();
    case Kind::kDerCmd:
      return std::make_unique<v1::NodeCommand>();
    case Kind::kAggregatorStatus:
      return std::make_unique<v1::AggregatorStatus>();
    case Kind::kGridStatus:
      return std::make_unique<v1::GridStatus>();
    case Kind::kVderDispatch:
      return std::make_unique<v1::DispatchRequest>();
    case Kind::kVderDispatchResult:
      return std::make_unique<v1::DispatchResult>();
    case Kind::kVderStatus:
      return std::make_unique<v1::VirtualDerStatus>();
    case Kind::kForecast:  // forecast/price/{node}: the only kind so far
      return std::make_unique<v1::PriceForecast>();
    case Kind::kScheduleRequest:
      return std::make_unique<v1::ScheduleRequest>();
    case Kind::kScheduleResult:
      return std::make_unique<v1::ScheduleResult>();
    case Kind::kVderCurtail:
      return std::make_unique<v1::CurtailRequest>();
    case Kind::kVderCurtailResult:
      return std::make_unique<v1::CurtailResult>();
    default:
      return nullptr;
  }
}

bool IsDeviceTopic(topics::Kind kind) {
  using topics::Kind;
  return kind == Kind::kDerBirth || kind == Kind::kDerStatus || kind == Kind::kDerTelemetry ||
         kind == Kind::kDerControl || kind == Kind::kDerResponse || kind == Kind::kDerCmd;
}

}  // namespace derms
