// Topic names of the wire contract (../shared/CONTRACT.md): building and
// parsing, with identifier validation. Every topic lives under "derms/v1/".
#ifndef DERMS_COMMON_TOPICS_H_
#define DERMS_COMMON_TOPICS_H_

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace derms::topics {

inline constexpr std::string_view kRoot = "derms/v1/";

// True when `id` matches [A-Za-z0-9_-]{1,64}, the contract's identifier rule.
bool IsValidId(std::string_view id);
// Ok, or an "invalid_id" error naming `what` (e.g. "der_id") and the rule.
Status ValidateId(std::string_view what, std::string_view id);

enum class Kind {
  kDerBirth,
  kDerStatus,
  kDerTelemetry,
  kDerControl,
  kDerResponse,
  kDerCmd,
  kAggregatorStatus,
  kGridStatus,
  kVderDispatch,
  kVderDispatchResult,
  kVderStatus,
  kEvent,            // events/{kind}
  kForecast,         // forecast/{kind}/{key}
  kScheduleRequest,  // schedule/request
  kScheduleResult,   // schedule/{request_id}/result
  kVderCurtail,        // vder/{vder_id}/curtail
  kVderCurtailResult,  // vder/{vder_id}/curtail/result
};

// A topic split into its kind and identifiers. `id` is the der_id, vder_id,
// substation_id, event kind or request_id; `key` is the forecast key.
struct Parsed {
  Kind kind;
  std::string id;
  std::string key;
};

// Parses a full topic ("derms/v1/der/bat-1/telemetry"). Errors: "bad_topic"
// for a topic outside the contract, "invalid_id" for a bad identifier.
StatusOr<Parsed> Parse(std::string_view topic);
// The request kind a topic was meant as, even when Parse refuses it (an
// identifier that breaks the rules, a vder path of several levels where its
// id belongs): a refused request can still be answered. nullopt for other
// topics.
std::optional<Kind> RequestKindOf(std::string_view topic);

std::string DerBirth(std::string_view der_id);
std::string DerStatus(std::string_view der_id);
std::string DerTelemetry(std::string_view der_id);
std::string DerControl(std::string_view der_id);
std::string DerResponse(std::string_view der_id);
std::string DerCmd(std::string_view der_id);
std::string AggregatorStatus();
std::string GridStatus(std::string_view substation_id);
std::string VderDispatch(std::string_view vder_id);
std::string VderDispatchResult(std::string_view vder_id);
std::string VderStatus(std::string_view vder_id);
std::string VderCurtail(std::string_view vder_id);
std::string VderCurtailResult(std::string_view vder_id);
std::string PriceForecast(std::string_view node);  // forecast/price/{node}
std::string ScheduleRequest();
std::string ScheduleResult(std::string_view request_id);
std::string Event(std::string_view kind);  // events/{kind}: report, backup, ...
// "derms/v1/der/+/<leaf>" style filters for subscriptions.
std::string AllDers(std::string_view leaf);
std::string Filter(std::string_view relative);  // kRoot + relative

}  // namespace derms::topics

#endif  // DERMS_COMMON_TOPICS_H_
