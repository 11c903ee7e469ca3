#include "cloud_aggregator/core/intake.h"

#include <fmt/format.h>

namespace derms::aggregator {

Intake::Intake(Metrics& metrics)
    : accepted_(metrics.AddCounter("messages_accepted", "messages that passed validation")),
      rejected_(metrics.AddCounter("messages_rejected", "messages refused, any reason")),
      stale_(metrics.AddCounter("messages_stale",
                                "late wills and redelivered samples, ignored by design")),
      by_reason_(metrics.AddLabeledCounter("messages_rejected_by_reason", "reason",
                                           "messages refused, by the rule they broke")) {}

void Intake::Reject(const Status& s, const std::string& topic) {
  rejected_.Add();
  by_reason_.Add(s.code());
  log_.Warn(s.code(), fmt::format("rejected message on '{}': {}", topic, s.message()));
}

}  // namespace derms::aggregator
