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
    case topics::Kind::kVderCurtail:
      return topics::Filter("vder/+/curtail");
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
  for (topics::Kind kind : module->Observes()) {
    if (by_kind_.count(kind) == 0) {
      return Status::Error("wiring", fmt::format("module '{}' observes a topic kind no module "
                                                 "owns",
                                                 module->name()));
    }
    observers_.emplace(kind, module);
  }
  return Status::Ok();
}

std::vector<std::string> Router::Filters() const {
  std::vector<std::string> filters;
  for (const auto& [kind, module] : by_kind_) {
    filters.push_back(SubscriptionFor(kind));
    if (kind == topics::Kind::kVderDispatch) {
      // A virtual DER's path (utility/north/north-storage, as its status
      // shows it) sent where its id belongs: caught to two and three levels,
      // the tree's usual depth, so the sender is told why nothing happens.
      // Deeper ones would need vder/#, which brings back every retained
      // status the aggregator publishes.
      filters.push_back(topics::Filter("vder/+/+/dispatch"));
      filters.push_back(topics::Filter("vder/+/+/+/dispatch"));
    }
  }
  return filters;
}

void Router::Refuse(Inbound& m, const Status& why, int64_t now_ms) {
  intake_.Reject(why, m.topic);
  // A request refused here is still the module's to answer.
  auto kind = topics::RequestKindOf(m.topic);
  if (!kind) return;
  auto it = by_kind_.find(*kind);
  if (it == by_kind_.end()) return;
  if (m.parsed.kind != *kind) m.parsed = topics::Parsed{*kind, {}, {}};
  it->second->OnRefused(m, why, now_ms);
}

void Router::Route(Inbound& m, int64_t now_ms) {
  auto parsed = topics::Parse(m.topic);
  if (!parsed.ok()) return Refuse(m, parsed.status(), now_ms);
  if (m.payload.empty()) {
    // An empty retained payload clears a retained message: nothing to store.
    m.parsed = std::move(parsed).value();
    return Refuse(
        m, Status::Error("empty_payload", fmt::format("topic '{}': empty payload", m.topic)),
        now_ms);
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
  auto [first, last] = observers_.equal_range(m.parsed.kind);
  for (auto o = first; o != last; ++o) o->second->OnObserved(m, now_ms);
}

}  // namespace derms::aggregator
