#include "tools/dermsctl/dispatch_command.h"

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/codec.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"

namespace derms::dermsctl {
namespace {

constexpr char kCommand[] = "dispatch";

struct DispatchArgs {
  std::string vder_id;
  SetpointFlags setpoint;  // a start of 0: now
  std::string request_id;  // empty: generated
  double wait_s = 5;
};

int Run(const DispatchArgs& a, const GlobalFlags& globals) {
  Status s = FirstError({topics::ValidateId("--vder", a.vder_id), a.setpoint.Check(),
                         CheckWaitSeconds("--wait", a.wait_s)});
  if (!s.ok()) return Fail(kCommand, s.message(), kExitBadArgument);
  v1::DispatchRequest r;
  r.set_request_id(a.request_id.empty() ? fmt::format("req-{}", globals.NowMs()) : a.request_id);
  r.set_target_kw(a.setpoint.target_kw);
  r.set_start_ms(a.setpoint.start_ms);
  r.set_duration_s(static_cast<uint32_t>(a.setpoint.duration_s));
  PrintUntil until;
  until.wait_s = a.wait_s;
  // The answer comes on the request's own response topic, refused or not;
  // the result topic would also bring other requesters' answers.
  until.is_final = [](const mqtt::Message&) { return true; };
  until.refusal = [](const mqtt::Message& answer) {
    v1::DispatchResult result;
    if (!codec::ParseOperator(answer.payload, answer.topic, &result).ok()) return std::string();
    if (result.outcome() != v1::DISPATCH_REFUSED) return std::string();
    return fmt::format("dispatch '{}' refused: {}", result.request_id(), result.reason());
  };
  return PublishRequest(kCommand, globals.broker, topics::VderDispatch(a.vder_id), codec::ToJson(r),
                        "", until, &v1::DispatchResult::default_instance());
}

}  // namespace

Subcommand AddDispatchCommand(CLI::App& app, const GlobalFlags& globals) {
  auto args = std::make_shared<DispatchArgs>();
  auto* cmd = app.add_subcommand(kCommand,
                                 "send a DispatchRequest to vder/{id}/dispatch "
                                 "and print the DispatchResult (exit 1 when refused)");
  cmd->add_option("--vder", args->vder_id, "virtual DER id")->required();
  args->setpoint.AddTo(cmd, "total output wanted, kW (+ export)", "0 = now");
  cmd->add_option("--request-id", args->request_id, "default: generated");
  cmd->add_option("--wait", args->wait_s, "seconds to wait for the result (default 5)");
  return {cmd, [args, &globals] { return Run(*args, globals); }};
}

}  // namespace derms::dermsctl
