// How a module says what became of a message: accepted, rejected (with a
// Status naming the input, the field and the rule) or ignored as stale. The
// figures go to the metrics registry; rejections are logged, rate-limited
// per reason.
#ifndef DERMS_CLOUD_AGGREGATOR_CORE_INTAKE_H_
#define DERMS_CLOUD_AGGREGATOR_CORE_INTAKE_H_

#include <string>

#include "cloud_aggregator/core/metrics.h"
#include "common/logging.h"
#include "common/status.h"

namespace derms::aggregator {

// Processing thread only.
class Intake {
 public:
  explicit Intake(Metrics& metrics);
  void Accept() { accepted_.Add(); }
  void Reject(const Status& s, const std::string& topic);
  // By design, not an error: a late will, a redelivered sample.
  void Stale() { stale_.Add(); }
  // A warning that is not about one message (a publish that failed, a
  // conflict in the virtual DER tree): logged rate-limited per key.
  void Warn(const std::string& key, const std::string& message) { log_.Warn(key, message); }

 private:
  Counter& accepted_;
  Counter& rejected_;
  Counter& stale_;
  LabeledCounter& by_reason_;
  logging::RateLimited log_;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_CORE_INTAKE_H_
