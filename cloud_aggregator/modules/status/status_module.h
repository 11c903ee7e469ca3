// The status module: aggregator/status (retained JSON) rendered from the
// metrics registry every `status_interval_s`, and the same rendering for the
// online status at connect, the offline status at stop and the will. A
// second renderer (Prometheus) reads the same snapshot.
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_STATUS_STATUS_MODULE_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_STATUS_STATUS_MODULE_H_

#include <cstdint>
#include <string>

#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/module.h"

namespace derms::aggregator {

// aggregator/status as the contract's AggregatorStatus JSON, from a snapshot.
std::string RenderStatusJson(const MetricsSnapshot& snapshot, bool online, int64_t started_ms);

class StatusModule : public Module {
 public:
  StatusModule(int64_t interval_s, int64_t started_ms, const ModulePorts& ports)
      : interval_s_(interval_s),
        started_ms_(started_ms),
        outbox_(ports.outbox),
        metrics_(ports.metrics) {}

  const char* name() const override { return "status"; }
  void AddJobs(Scheduler& scheduler) override;
  std::string Render(bool online, int64_t now_ms) const {
    return RenderStatusJson(metrics_.Snapshot(now_ms), online, started_ms_);
  }

 private:
  const int64_t interval_s_;
  const int64_t started_ms_;
  Outbox& outbox_;
  const Metrics& metrics_;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_STATUS_STATUS_MODULE_H_
