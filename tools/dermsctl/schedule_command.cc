#include "tools/dermsctl/schedule_command.h"

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>

#include "common/codec.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"

namespace derms::dermsctl {
namespace {

constexpr char kRequestCommand[] = "schedule request";
constexpr char kGetCommand[] = "schedule get";

struct RequestArgs {
  std::string request_id;  // empty: generated
  std::string node;
  std::string der_id;
  double max_charge_kw = 0;
  double energy_kwh = 0;
  std::string earliest = "+0s";
  std::string ready_by;
  std::optional<double> soc_pct;
  std::optional<double> capacity_kwh;
  std::optional<double> efficiency;
  std::optional<double> undelivered_price;
  bool no_execute = false;
  double wait_s = 5;
};

// Ok, or the flag's "must be a finite number" error; an absent one is ok.
Status CheckFiniteIfGiven(std::string_view flag, const std::optional<double>& value) {
  return value ? CheckFinite(flag, *value) : Status::Ok();
}

Status CheckRequestArgs(const RequestArgs& a, const std::string& request_id) {
  return FirstError({topics::ValidateId("--request-id", request_id),
                     a.node.empty() ? Status::Ok() : topics::ValidateId("--node", a.node),
                     a.der_id.empty() ? Status::Ok() : topics::ValidateId("--der", a.der_id),
                     CheckFinite("--max-charge-kw", a.max_charge_kw),
                     CheckFinite("--energy-kwh", a.energy_kwh),
                     CheckFiniteIfGiven("--soc-pct", a.soc_pct),
                     CheckFiniteIfGiven("--capacity-kwh", a.capacity_kwh),
                     CheckFiniteIfGiven("--efficiency", a.efficiency),
                     CheckFiniteIfGiven("--undelivered-price", a.undelivered_price),
                     CheckWaitSeconds("--wait", a.wait_s)});
}

// A result is the last answer unless it was solved and sent to a DER: then
// the result that reports its delivery follows.
bool IsFinalResult(const mqtt::Message& answer) {
  v1::ScheduleResult r;
  if (!codec::ParseOperator(answer.payload, answer.topic, &r).ok()) return false;
  return r.status() != v1::SCHEDULE_SOLVED || r.command_id().empty();
}

// A failed schedule's reason; "" for any other answer.
std::string FailedReason(const mqtt::Message& answer) {
  v1::ScheduleResult r;
  if (!codec::ParseOperator(answer.payload, answer.topic, &r).ok()) return "";
  if (r.status() != v1::SCHEDULE_FAILED) return "";
  return fmt::format("schedule '{}' failed: {}", r.request_id(), r.reason());
}

int RunRequest(const RequestArgs& a, const GlobalFlags& globals) {
  const int64_t now_ms = globals.NowMs();
  const std::string request_id =
      a.request_id.empty() ? fmt::format("sched-{}", now_ms) : a.request_id;
  Status s = CheckRequestArgs(a, request_id);
  if (!s.ok()) return Fail(kRequestCommand, s.message(), kExitBadArgument);
  auto from = ParseTime("--earliest", a.earliest, now_ms);
  if (!from.ok()) return Fail(kRequestCommand, from.status().message());
  auto to = ParseTime("--ready-by", a.ready_by, now_ms);
  if (!to.ok()) return Fail(kRequestCommand, to.status().message());
  v1::ScheduleRequest sq;
  sq.set_request_id(request_id);
  sq.set_node(a.node);
  sq.set_der_id(a.der_id);
  sq.set_max_charge_kw(a.max_charge_kw);
  sq.set_energy_kwh(a.energy_kwh);
  sq.set_earliest_start_ms(*from);
  sq.set_ready_by_ms(*to);
  if (a.soc_pct) sq.set_soc_pct(*a.soc_pct);
  if (a.capacity_kwh) sq.set_capacity_kwh(*a.capacity_kwh);
  if (a.efficiency) sq.set_efficiency(*a.efficiency);
  if (a.undelivered_price) sq.set_undelivered_price_per_mwh(*a.undelivered_price);
  if (a.no_execute) sq.set_execute(false);
  PrintUntil until;
  until.wait_s = a.wait_s;
  until.is_final = IsFinalResult;
  until.refusal = FailedReason;
  return PublishRequest(kRequestCommand, globals.broker, topics::ScheduleRequest(),
                        codec::ToJson(sq), topics::ScheduleResult(request_id), until,
                        &v1::ScheduleResult::default_instance());
}

int RunGet(const std::string& request_id, const GlobalFlags& globals) {
  Status s = topics::ValidateId("request_id", request_id);
  if (!s.ok()) return Fail(kGetCommand, s.message(), kExitBadArgument);
  // A request carrying only the id is answered with that request's result.
  v1::ScheduleRequest lookup;
  lookup.set_request_id(request_id);
  PrintUntil until;
  until.is_final = [](const mqtt::Message&) { return true; };
  until.refusal = FailedReason;
  return PublishRequest(kGetCommand, globals.broker, topics::ScheduleRequest(),
                        codec::ToJson(lookup), topics::ScheduleResult(request_id), until,
                        &v1::ScheduleResult::default_instance());
}

}  // namespace

std::vector<Subcommand> AddScheduleCommands(CLI::App& app, const GlobalFlags& globals) {
  auto* schedule = app.add_subcommand("schedule", "charging schedules at lowest cost");
  schedule->require_subcommand(1);

  auto args = std::make_shared<RequestArgs>();
  auto* request = schedule->add_subcommand(
      "request", "send a ScheduleRequest and print the result (and its delivery to the DER)");
  request->add_option("--request-id", args->request_id, "default: generated");
  request->add_option("--node", args->node, "pricing node");
  request->add_option("--der", args->der_id, "DER to schedule (and send the schedule to)");
  request->add_option("--max-charge-kw", args->max_charge_kw, "charge power limit, kW")->required();
  request->add_option("--energy-kwh", args->energy_kwh, "energy to store by ready-by, kWh")
      ->required();
  request->add_option("--earliest", args->earliest,
                      "earliest start: epoch ms, ISO-8601 UTC or +N[smhd] (default now)");
  request->add_option("--ready-by", args->ready_by, "ready by: same forms")->required();
  request->add_option("--soc-pct", args->soc_pct, "state of charge now, %");
  request->add_option("--capacity-kwh", args->capacity_kwh, "storage capacity, kWh");
  request->add_option("--efficiency", args->efficiency, "charging efficiency, (0, 1]");
  request->add_option("--undelivered-price", args->undelivered_price,
                      "price per MWh of energy left undelivered");
  request->add_flag("--no-execute", args->no_execute, "do not send the schedule to the DER");
  request->add_option("--wait", args->wait_s, "seconds to wait for answers (default 5)");

  auto request_id = std::make_shared<std::string>();
  auto* get =
      schedule->add_subcommand("get", "print the latest result of an earlier request, by its id");
  get->add_option("request_id", *request_id, "request id")->required();

  return {{request, [args, &globals] { return RunRequest(*args, globals); }},
          {get, [request_id, &globals] { return RunGet(*request_id, globals); }}};
}

}  // namespace derms::dermsctl
