// The controls module: sends controls and node commands for the other
// modules (ControlChannel), takes every DER's answer (der/+/response):
// decodes, validates, stores it, keeps the control ledger, and tells the
// modules that listen (dispatch, charging). It owns the control ledger and
// the availability holds, which it lends to the modules that need them.
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_CONTROLS_CONTROLS_MODULE_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_CONTROLS_CONTROLS_MODULE_H_

#include <vector>

#include "cloud_aggregator/controls/availability.h"
#include "cloud_aggregator/controls/control_ledger.h"
#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/module.h"
#include "cloud_aggregator/modules/controls/control_channel.h"

namespace derms::aggregator {

class ControlsModule : public Module, public ControlChannel {
 public:
  explicit ControlsModule(const ModulePorts& ports);

  const char* name() const override { return "controls"; }
  std::vector<topics::Kind> Topics() const override { return {topics::Kind::kDerResponse}; }
  void OnMessage(const Inbound& m, int64_t now_ms) override;
  void AddJobs(Scheduler& scheduler) override;

  void SendControl(derms::v1::Control control, const std::string& der_id, int64_t run_id) override;
  void SendCommand(const std::string& der_id, derms::v1::NodeCommandType type,
                   const std::string& reason, int64_t now_ms) override;

  // Told of every answer, in the order added. REQUIRES: wiring time.
  void AddListener(ControlAnswers* listener) { listeners_.push_back(listener); }
  controls::ControlLedger& ledger() { return ledger_; }
  controls::AvailabilityHolds& holds() { return holds_; }

 private:
  Outbox& outbox_;
  RecordSink& sink_;
  Intake& intake_;
  Counter& controls_sent_;
  Counter& responses_;
  std::vector<ControlAnswers*> listeners_;
  controls::ControlLedger ledger_;
  controls::AvailabilityHolds holds_;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_CONTROLS_CONTROLS_MODULE_H_
