// Topic routing: each topic kind of the contract to the one module that
// declared it. The subscriptions are the union of what modules declared.
#ifndef DERMS_CLOUD_AGGREGATOR_CORE_ROUTER_H_
#define DERMS_CLOUD_AGGREGATOR_CORE_ROUTER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/module.h"
#include "common/status.h"

namespace derms::aggregator {

// Processing thread only (Add at wiring time).
class Router {
 public:
  explicit Router(Intake& intake) : intake_(intake) {}
  // Fails ("wiring") when a kind is already taken or has no subscription,
  // or when a module observes a kind no module owns (add owners first).
  [[nodiscard]] Status Add(Module* module);
  // The MQTT filters to subscribe to, one per declared kind.
  std::vector<std::string> Filters() const;
  // Parses the topic and hands the message to its module; a topic outside
  // the contract, a kind nobody declared or an empty payload is rejected,
  // and a rejected request (vder/.../dispatch, schedule/request) is handed
  // to its module's OnRefused so that it is answered.
  void Route(Inbound& m, int64_t now_ms);

 private:
  void Refuse(Inbound& m, const Status& why, int64_t now_ms);

  Intake& intake_;
  std::map<topics::Kind, Module*> by_kind_;
  std::multimap<topics::Kind, Module*> observers_;
};

// The subscription filter for a kind the aggregator consumes ("" for a kind
// it only publishes).
std::string SubscriptionFor(topics::Kind kind);

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_CORE_ROUTER_H_
