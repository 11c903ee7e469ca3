#include "tools/dermsctl/curtail_command.h"

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/codec.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"

namespace derms::dermsctl {
namespace {

constexpr char kCommand[] = "curtail";

struct CurtailArgs {
  std::string vder_id;
  std::string policy;      // empty: the aggregator's configured one
  double v_max_pu = 0;     // 0: the scenario's
  int64_t duration_s = 0;  // 0: the configured
  std::string request_id;  // empty: generated
  double wait_s = 10;
};

int Run(const CurtailArgs& a, const GlobalFlags& globals) {
  Status s = FirstError({topics::ValidateId("--vder", a.vder_id),
                         CheckWaitSeconds("--wait", a.wait_s)});
  if (s.ok() && a.v_max_pu != 0 && !(a.v_max_pu >= 1.0 && a.v_max_pu <= 1.2)) {
    s = Status::Error("invalid_argument",
                      fmt::format("--v-max {} outside [1, 1.2] (0: the scenario's)", a.v_max_pu));
  }
  if (s.ok() && (a.duration_s < 0 || a.duration_s > 86400)) {
    s = Status::Error("invalid_argument",
                      fmt::format("--duration-s {} outside [0, 86400]", a.duration_s));
  }
  if (!s.ok()) return Fail(kCommand, s.message(), kExitBadArgument);
  v1::CurtailRequest r;
  r.set_request_id(a.request_id.empty() ? fmt::format("curtail-{}", globals.NowMs())
                                        : a.request_id);
  r.set_policy(a.policy);
  r.set_v_max_pu(a.v_max_pu);
  r.set_duration_s(static_cast<uint32_t>(a.duration_s));
  PrintUntil until;
  until.wait_s = a.wait_s;
  // Answered on the request's own response topic, refused or not.
  until.is_final = [](const mqtt::Message&) { return true; };
  until.refusal = [](const mqtt::Message& answer) {
    v1::CurtailResult result;
    if (!codec::ParseOperator(answer.payload, answer.topic, &result).ok()) return std::string();
    if (result.outcome() != v1::CURTAIL_REFUSED && result.outcome() != v1::CURTAIL_INFEASIBLE) {
      return std::string();
    }
    return fmt::format("curtail '{}' {}: {}", result.request_id(),
                       result.outcome() == v1::CURTAIL_REFUSED ? "refused" : "infeasible",
                       result.reason());
  };
  return PublishRequest(kCommand, globals.broker, topics::VderCurtail(a.vder_id), codec::ToJson(r),
                        "", until, &v1::CurtailResult::default_instance());
}

}  // namespace

Subcommand AddCurtailCommand(CLI::App& app, const GlobalFlags& globals) {
  auto args = std::make_shared<CurtailArgs>();
  auto* cmd = app.add_subcommand(kCommand,
                                 "ask for a feeder curtailment run over a virtual DER's PVs "
                                 "(vder/{id}/curtail) and print the CurtailResult (exit 1 when "
                                 "refused or infeasible)");
  cmd->add_option("--vder", args->vder_id, "virtual DER id")->required();
  cmd->add_option("--policy", args->policy,
                  "equal_ratio, per_area, equal_kw or min_total (default: the aggregator's)");
  cmd->add_option("--v-max", args->v_max_pu, "upper voltage limit, pu (default: the scenario's)");
  cmd->add_option("--duration-s", args->duration_s, "how long the caps last (default: configured)");
  cmd->add_option("--request-id", args->request_id, "default: generated");
  cmd->add_option("--wait", args->wait_s, "seconds to wait for the result (default 10)");
  return {cmd, [args, &globals] { return Run(*args, globals); }};
}

}  // namespace derms::dermsctl
