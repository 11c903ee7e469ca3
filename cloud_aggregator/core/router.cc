#include "cloud_aggregator/core/router.h"

#include <fmt/format.h>

namespace derms::aggregator {

std::string SubscriptionFor(topics::Kind kind) {
  switch (kind) {
    case topics::Kind::kDerBirth:
      return topics::AllDers("birth");
    case topics::Kind::kDerStatus:
      return topics::AllDers("status");
    case topics::Kind::kDerTelemetry:
      return topics::AllDers("telemetry");
    case topics::Kind::kDerResponse:
      return topics::AllDers("response");
    case topics::Kind::kGridStatus:
      return topics::Filter("grid/+/status");
    case topics::Kind::kVderDispatch:
      return topics::Filter("vder/+/dispatch");
    case topics::Kind::kForecast:
      return topics::Filter("forecast/+/+");
    case topics::Kind::kScheduleRequest:
      return topics::ScheduleRequest();
    default:
      return "";
  }
}

Status Router::Add(Module* module) {
  for (topics::Kind kind : module->Topics()) {
    if (SubscriptionFor(kind).empty()) {
      return Status::Error("wiring", fmt::format("module '{}' declares a topic kind the "
                                                 "aggregator cannot subscribe to",
                                                 module->name()));
    }
    auto [it, added] = by_kind_.emplace(kind, module);
    if (!added) {
      return Status::Error("wiring",
                           fmt::format("modules '{}' and '{}' both declare one topic kind",
                                       it->second->name(), module->name()));
    }
  }
  return Status::Ok();
}

std::vector<std::string> Router::Filters() const {
  std::vector<std::string> filters;
  for (const auto& [kind, module] : by_kind_) filters.push_back(SubscriptionFor(kind));
  return filters;
}

void Router::Route(Inbound& m, int64_t now_ms) {
  auto parsed = topics::Parse(m.topic);
  if (!parsed.ok()) return intake_.Reject(parsed.status(), m.topic);
  if (m.payload.empty()) {
    // An empty retained payload clears a retained message: nothing to store.
    return intake_.Reject(
        Status::Error("empty_payload", fmt::format("topic '{}': empty payload", m.topic)), m.topic);
  }
  auto it = by_kind_.find(parsed->kind);
  if (it == by_kind_.end()) {
    return intake_.Reject(
        Status::Error("unexpected_topic",
                      fmt::format("topic '{}' is not one the aggregator consumes", m.topic)),
        m.topic);
  }
  m.parsed = std::move(parsed).value();
  it->second->OnMessage(m, now_ms);
}

}  // namespace derms::aggregator
