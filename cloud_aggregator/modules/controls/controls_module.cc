#include "cloud_aggregator/modules/controls/controls_module.h"

#include "cloud_aggregator/registry/validation.h"
#include "common/codec.h"
#include "common/topics.h"

namespace derms::aggregator {

ControlsModule::ControlsModule(const ModulePorts& ports)
    : outbox_(ports.outbox),
      sink_(ports.sink),
      intake_(ports.intake),
      controls_sent_(ports.metrics.AddCounter("controls_sent", "controls published to DERs")),
      responses_(ports.metrics.AddCounter("control_responses", "answers from DERs to controls")) {}

void ControlsModule::OnMessage(const Inbound& m, int64_t now_ms) {
  const std::string& der_id = m.parsed.id;
  derms::v1::ControlResponse r;
  Status s = codec::ParseDevice(m.payload, "response", der_id, &r);
  if (s.ok()) s = registry::ValidateResponse(r, der_id);
  if (!s.ok()) return intake_.Reject(s, m.topic);
  intake_.Accept();
  responses_.Add();
  ledger_.OnAnswer(der_id, r.command_id(), r.status(), r.applied_kw());
  for (ControlAnswers* listener : listeners_) listener->OnControlResponse(der_id, r, now_ms);
  sink_.Add(storage::ResponseRecord{std::move(r), der_id, now_ms});
}

void ControlsModule::AddJobs(Scheduler& scheduler) {
  // A sweep over every controlled DER: only now and then.
  scheduler.Every("controls.forget_ended", 5000, [this](int64_t now_ms) {
    ledger_.ForgetEnded(now_ms);
    holds_.Expire(now_ms);
  });
}

void ControlsModule::SendControl(derms::v1::Control control, const std::string& der_id,
                                 int64_t run_id) {
  outbox_.Publish(topics::DerControl(der_id), codec::ToBinary(control));
  sink_.Add(storage::ControlRecord{std::move(control), der_id, run_id});
  controls_sent_.Add();
}

void ControlsModule::SendCommand(const std::string& der_id, derms::v1::NodeCommandType type,
                                 const std::string& reason, int64_t now_ms) {
  derms::v1::NodeCommand cmd;
  cmd.set_command(type);
  cmd.set_timestamp_ms(now_ms);
  cmd.set_reason(reason);
  outbox_.Publish(topics::DerCmd(der_id), codec::ToBinary(cmd));
}

}  // namespace derms::aggregator
