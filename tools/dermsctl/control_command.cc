#include "tools/dermsctl/control_command.h"

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/codec.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"

namespace derms::dermsctl {
namespace {

constexpr char kCommand[] = "control";

struct ControlArgs {
  std::string der_id;
  SetpointFlags setpoint;  // a start of 0: on receipt
  std::string command_id;  // empty: generated
  int priority = 0;
  double wait_s = 5;
};

// The agent answers RECEIVED, then APPLIED or CLAMPED while the control
// runs; any other status is its last word on this command.
bool IsFinalResponse(const mqtt::Message& answer, const std::string& command_id) {
  v1::ControlResponse response;
  if (!codec::ParseBinary(answer.payload, answer.topic, &response).ok()) return false;
  auto status = response.status();
  return response.command_id() == command_id && status != v1::RECEIVED && status != v1::APPLIED &&
         status != v1::CLAMPED;
}

int Run(const ControlArgs& a, const GlobalFlags& globals) {
  Status s = FirstError({topics::ValidateId("--der", a.der_id), a.setpoint.Check(),
                         CheckWaitSeconds("--wait", a.wait_s)});
  if (!s.ok()) return Fail(kCommand, s.message(), kExitBadArgument);
  const int64_t now_ms = globals.NowMs();
  v1::Control k;
  k.set_command_id(a.command_id.empty() ? fmt::format("ctl-{}", now_ms) : a.command_id);
  k.set_issued_at_ms(now_ms);
  k.set_priority(a.priority);
  k.set_der_id(a.der_id);
  auto* interval = k.add_intervals();
  interval->set_start_ms(a.setpoint.start_ms);
  interval->set_duration_s(static_cast<uint32_t>(a.setpoint.duration_s));
  interval->set_target_kw(a.setpoint.target_kw);
  PrintUntil until;
  until.wait_s = a.wait_s;
  until.is_final = [command_id = k.command_id()](const mqtt::Message& answer) {
    return IsFinalResponse(answer, command_id);
  };
  return PublishRequest(kCommand, globals.broker, topics::DerControl(a.der_id), codec::ToBinary(k),
                        topics::DerResponse(a.der_id), until);
}

}  // namespace

Subcommand AddControlCommand(CLI::App& app, const GlobalFlags& globals) {
  auto args = std::make_shared<ControlArgs>();
  auto* cmd = app.add_subcommand(kCommand,
                                 "send a Control to der/{id}/control and print "
                                 "the responses");
  cmd->add_option("--der", args->der_id, "DER id")->required();
  args->setpoint.AddTo(cmd, "setpoint, kW (+ export, - import)", "0 = on receipt");
  cmd->add_option("--command-id", args->command_id, "default: generated");
  cmd->add_option("--priority", args->priority, "default 0");
  cmd->add_option("--wait", args->wait_s, "seconds to print responses for (default 5)");
  return {cmd, [args, &globals] { return Run(*args, globals); }};
}

}  // namespace derms::dermsctl
