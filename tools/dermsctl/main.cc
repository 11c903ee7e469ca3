// dermsctl: the operator's command line. Publishes grid status, dispatch
// requests, controls, price forecasts (from CSV) and charging schedule
// requests, and watches any derms/v1 topic as one JSON line per message.

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "cloud_aggregator/scheduling/price_book.h"
#include "cloud_aggregator/storage/rollup_reader.h"
#include "common/blocking_queue.h"
#include "common/cli_overrides.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/messages.h"
#include "common/mqtt/mqtt_client.h"
#include "common/signals.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"
#include "tools/dermsctl/backup_command.h"
#include "tools/dermsctl/query_command.h"
#include "tools/dermsctl/slots_command.h"

namespace {

using derms::Status;
namespace mqtt = derms::mqtt;
namespace topics = derms::topics;
using std::chrono::milliseconds;

struct Common {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string username, password;
  double wait_s = 5;
};

int Fail(const std::string& message) {
  fmt::print(stderr, "dermsctl: {}\n", message);
  return 1;
}

// Connects a fresh, clean session; messages arrive on `inbox`.
derms::StatusOr<std::unique_ptr<mqtt::Client>> Connect(const Common& c,
                                                       derms::BlockingQueue<mqtt::Message>* inbox) {
  auto client = mqtt::Client::Create(c.broker, fmt::format("dermsctl-{}", ::getpid()));
  if (!client.ok()) return client.status();
  if (inbox) (*client)->SetMessageHandler([inbox](mqtt::Message m) { inbox->Push(std::move(m)); });
  mqtt::ConnectOptions options;
  options.username = c.username;
  options.password = c.password;
  Status s = (*client)->Connect(options, milliseconds(5000));
  if (!s.ok()) return s;
  return client;
}

// Renders one message as {"topic": ..., "message": {...}} (or "error").
std::string Describe(const mqtt::Message& m) {
  auto parsed = topics::Parse(m.topic);
  std::string topic_json = fmt::format("\"{}\"", m.topic);
  if (!parsed.ok()) {
    return fmt::format("{{\"topic\":{},\"error\":\"{}\"}}", topic_json, parsed.status().message());
  }
  auto msg = derms::NewMessageFor(parsed->kind);
  if (!msg) {
    // No schema yet for this topic: show the payload if it is JSON already.
    if (derms::codec::LooksLikeJson(m.payload)) {
      return fmt::format("{{\"topic\":{},\"message\":{}}}", topic_json, m.payload);
    }
    return fmt::format("{{\"topic\":{},\"bytes\":{}}}", topic_json, m.payload.size());
  }
  Status s = derms::IsDeviceTopic(parsed->kind)
                 ? derms::codec::ParseBinary(m.payload, m.topic, msg.get())
                 : derms::codec::ParseOperator(m.payload, m.topic, msg.get());
  if (m.payload.empty()) return fmt::format("{{\"topic\":{},\"cleared\":true}}", topic_json);
  if (!s.ok()) {
    std::string escaped;
    for (char ch : s.message())
      escaped += (ch == '"' || ch == '\\') ? std::string("\\") + ch : std::string(1, ch);
    return fmt::format("{{\"topic\":{},\"error\":\"{}\"}}", topic_json, escaped);
  }
  return fmt::format("{{\"topic\":{},\"retained\":{},\"message\":{}}}", topic_json,
                     m.retained ? "true" : "false", derms::codec::ToJson(*msg));
}

int Watch(const Common& c, std::string filter, int count, const std::atomic<bool>& stop) {
  if (filter.rfind("derms/", 0) != 0) filter = topics::Filter(filter);
  derms::BlockingQueue<mqtt::Message> inbox;
  auto client = Connect(c, &inbox);
  if (!client.ok()) return Fail(client.status().message());
  Status s = (*client)->Subscribe({filter}, 1, milliseconds(5000));
  if (!s.ok()) return Fail(s.message());
  int seen = 0;
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(c.wait_s * 1000));
  while (!stop && (count <= 0 || seen < count)) {
    if (c.wait_s > 0 && std::chrono::steady_clock::now() >= deadline) break;
    auto m = inbox.PopFor(milliseconds(100));
    if (!m) continue;
    std::cout << Describe(*m) << std::endl;
    ++seen;
  }
  (*client)->Disconnect();
  return 0;
}

// Publishes `payload` on `topic`; with an answer filter, prints the messages
// arriving there for --wait seconds, or until `is_final` says one is the last.
int Request(const Common& c, const std::string& topic, const std::string& payload,
            const std::string& answer_filter,
            const std::function<bool(const mqtt::Message&)>& is_final) {
  derms::BlockingQueue<mqtt::Message> inbox;
  auto client = Connect(c, &inbox);
  if (!client.ok()) return Fail(client.status().message());
  if (!answer_filter.empty()) {
    Status s = (*client)->Subscribe({answer_filter}, 1, milliseconds(5000));
    if (!s.ok()) return Fail(s.message());
  }
  mqtt::Message m{topic, payload, 1, false, {}, {}};
  Status s = (*client)->PublishAndWait(m, milliseconds(5000));
  if (!s.ok()) return Fail(s.message());
  fmt::print("published {}\n", topic);
  if (answer_filter.empty() || c.wait_s <= 0) return 0;
  auto deadline =
      std::chrono::steady_clock::now() + milliseconds(static_cast<int64_t>(c.wait_s * 1000));
  int answers = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto a = inbox.PopFor(milliseconds(100));
    if (!a) continue;
    std::cout << Describe(*a) << std::endl;
    ++answers;
    if (is_final && is_final(*a)) break;
  }
  (*client)->Disconnect();
  if (answers == 0)
    return Fail(fmt::format("no answer on '{}' within {} s", answer_filter, c.wait_s));
  return 0;
}

// Reads the retained aggregator status and every virtual DER's status and
// prints the tree: what an operator or the demo wants at a glance.
int PrintStatus(const Common& c) {
  derms::BlockingQueue<mqtt::Message> inbox;
  auto client = Connect(c, &inbox);
  if (!client.ok()) return Fail(client.status().message());
  Status s = (*client)->Subscribe({topics::AggregatorStatus(), topics::Filter("vder/+/status")}, 1,
                                  milliseconds(5000));
  if (!s.ok()) return Fail(s.message());
  std::map<std::string, derms::v1::VirtualDerStatus> by_path;
  derms::v1::AggregatorStatus agg;
  bool have_agg = false;
  // Retained messages arrive at once; a short quiet spell means we have them all.
  while (auto m = inbox.PopFor(milliseconds(300))) {
    if (m->topic == topics::AggregatorStatus()) {
      have_agg = derms::codec::ParseOperator(m->payload, m->topic, &agg).ok();
      continue;
    }
    derms::v1::VirtualDerStatus v;
    if (!m->payload.empty() && derms::codec::ParseOperator(m->payload, m->topic, &v).ok()) {
      by_path[v.path().empty() ? v.vder_id() : v.path()] = v;
    }
  }
  (*client)->Disconnect();
  if (!have_agg) {
    fmt::print("aggregator: no status published yet\n");
  } else {
    fmt::print("aggregator {}: {}/{} DERs online, {} messages accepted, {} rejected\n",
               agg.online() ? "online" : "OFFLINE", agg.ders_online(), agg.ders_known(),
               agg.messages_accepted(), agg.messages_rejected());
  }
  for (const auto& [path, v] : by_path) {
    size_t depth = static_cast<size_t>(std::count(path.begin(), path.end(), '/'));
    std::string label = std::string(2 * depth, ' ') + v.vder_id();
    fmt::print(
        "  {:<22} {:<11} DERs {:>4}/{:<4} output {:>+8.1f} kW  up {:>7.1f} down {:>7.1f} kW  "
        "{:>7.1f} kWh  target {:>+8.1f} kW\n",
        label, v.dispatchable() ? v.policy() : "view", v.members_online(), v.members_total(),
        v.output_kw(), v.available_discharge_kw(), v.available_charge_kw(),
        v.energy_available_kwh(), v.target_kw());
    std::string indent(24, ' ');
    if (v.has_grid()) {
      const auto& g = v.grid();
      fmt::print("{}grid: load {:.1f} supply {:.1f} kW, imbalance {:+.1f} kW, {:.3f} Hz\n", indent,
                 g.load_kw(), g.supply_kw(), g.load_kw() - g.supply_kw(), g.frequency_hz());
    }
    if (v.has_last_run() && v.last_run().vder_id() == v.vder_id()) {
      const auto& r = v.last_run();
      std::string outcomes;
      for (const auto& [status, n] :
           std::map<std::string, uint32_t>(r.outcomes().begin(), r.outcomes().end())) {
        outcomes += fmt::format(" {}={}", status, n);
      }
      fmt::print(
          "{}run {} ({}): requested {:+.1f} kW, achieved {:+.1f}, shortfall {:+.1f}; {} active, "
          "{} dispatched, {} round(s){}{}\n",
          indent, r.run_id(), r.trigger(), r.requested_kw(), r.achieved_kw(), r.shortfall_kw(),
          r.members_active(), r.members_dispatched(), r.rounds(), outcomes.empty() ? "" : " |",
          outcomes);
      if (!r.reason().empty()) fmt::print("{}  why: {}\n", indent, r.reason());
    }
  }
  return 0;
}

// A time on the command line: epoch milliseconds, ISO-8601 UTC
// ("2026-11-21T18:00:00Z"), or relative to now ("+90m", "+4h", "+2d").
derms::StatusOr<int64_t> ParseTime(const std::string& flag, const std::string& text,
                                   int64_t now_ms) {
  auto bad = [&] {
    return Status::Error("invalid_argument",
                         fmt::format("{} '{}': give epoch ms, an ISO-8601 UTC time "
                                     "(2026-11-21T18:00:00Z) or +N[smhd] / -N[smhd] from now",
                                     flag, text));
  };
  if (text.empty()) return bad();
  if (text[0] == '+' || text[0] == '-') {
    const int64_t sign = text[0] == '-' ? -1 : 1;
    char unit = text.back();
    int64_t scale = unit == 's'   ? 1000
                    : unit == 'm' ? 60000
                    : unit == 'h' ? 3600000
                    : unit == 'd' ? 86400000
                                  : 0;
    if (scale == 0 || text.size() < 3) return bad();
    try {
      size_t used = 0;
      double n = std::stod(text.substr(1, text.size() - 2), &used);
      // At most about ten years ahead, so the sum stays an int64.
      if (used != text.size() - 2 || !(n >= 0) || n * scale > 3.2e11) return bad();
      return now_ms + sign * static_cast<int64_t>(n * scale);
    } catch (const std::exception&) {
      return bad();
    }
  }
  if (std::all_of(text.begin(), text.end(), ::isdigit)) {
    try {
      return static_cast<int64_t>(std::stoll(text));
    } catch (const std::exception&) {
      return bad();
    }
  }
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return bad();
  std::string rest;
  in >> rest;
  if (!rest.empty() && rest != "Z") return bad();
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

// dermsctl prices import FILE: each forecast of the CSV file to
// forecast/price/{node}.
int ImportPrices(const Common& c, const std::string& path) {
  std::ifstream in(path);
  if (!in) return Fail(fmt::format("prices import: cannot read '{}'", path));
  std::stringstream text;
  text << in.rdbuf();
  auto forecasts = derms::scheduling::ParsePriceCsv(text.str(), path);
  if (!forecasts.ok()) return Fail(forecasts.status().message());
  auto client = Connect(c, nullptr);
  if (!client.ok()) return Fail(client.status().message());
  size_t intervals = 0;
  for (const auto& f : *forecasts) {
    derms::v1::PriceForecast wire;
    wire.set_node(f.node);
    wire.set_issued_ms(f.issued_ms);
    wire.set_kind(f.kind == derms::scheduling::ForecastKind::kLongTerm ? derms::v1::LONG_TERM
                                                                       : derms::v1::SHORT_TERM);
    for (const auto& iv : f.intervals) {
      auto* out = wire.add_intervals();
      out->set_start_ms(iv.start_ms);
      out->set_duration_s(static_cast<uint32_t>(iv.duration_s));
      out->set_price_per_mwh(iv.price_per_mwh);
    }
    intervals += f.intervals.size();
    Status s = (*client)->PublishAndWait(
        mqtt::Message{topics::PriceForecast(f.node), derms::codec::ToJson(wire), 1, false, {}, {}},
        milliseconds(5000));
    if (!s.ok()) return Fail(s.message());
  }
  (*client)->Disconnect();
  fmt::print("published {} forecasts ({} intervals) from {}\n", forecasts->size(), intervals, path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dermsctl: publish grid status, dispatch requests and controls; watch topics."};
  app.require_subcommand(1);
  Common c;
  app.add_option("--broker", c.broker, "MQTT broker URI (default tcp://127.0.0.1:1883)");
  app.add_option("--username", c.username, "MQTT user name");
  app.add_option("--password", c.password, "MQTT password");

  auto* grid = app.add_subcommand("grid", "publish GridStatus on grid/{substation}/status");
  derms::v1::GridStatus g;
  std::string substation;
  double load_kw = 0, supply_kw = 0, frequency_hz = 60, voltage_pu = 1;
  grid->add_option("--substation", substation, "substation id")->required();
  grid->add_option("--load-kw", load_kw, "demand to be served, kW")->required();
  grid->add_option("--supply-kw", supply_kw, "supply available without DERs, kW")->required();
  grid->add_option("--frequency-hz", frequency_hz, "default 60");
  grid->add_option("--voltage-pu", voltage_pu, "default 1.0");

  auto* dispatch = app.add_subcommand("dispatch",
                                      "send a DispatchRequest to vder/{id}/dispatch "
                                      "and print the DispatchResult");
  std::string vder_id, request_id;
  double target_kw = 0;
  int64_t start_ms = 0;
  int64_t duration_s = 300;
  dispatch->add_option("--vder", vder_id, "virtual DER id")->required();
  dispatch->add_option("--target-kw", target_kw, "total output wanted, kW (+ export)")->required();
  dispatch->add_option("--duration-s", duration_s, "default 300")->check(CLI::PositiveNumber);
  dispatch->add_option("--start-ms", start_ms, "0 = now");
  dispatch->add_option("--request-id", request_id, "default: generated");
  dispatch->add_option("--wait", c.wait_s, "seconds to wait for the result (default 5)");

  auto* control = app.add_subcommand("control",
                                     "send a Control to der/{id}/control and print "
                                     "the responses");
  std::string der_id, command_id;
  int priority = 0;
  control->add_option("--der", der_id, "DER id")->required();
  control->add_option("--target-kw", target_kw, "setpoint, kW (+ export, - import)")->required();
  control->add_option("--duration-s", duration_s, "default 300")->check(CLI::PositiveNumber);
  control->add_option("--start-ms", start_ms, "0 = on receipt");
  control->add_option("--command-id", command_id, "default: generated");
  control->add_option("--priority", priority, "default 0");
  control->add_option("--wait", c.wait_s, "seconds to print responses for (default 5)");

  auto* status = app.add_subcommand("status",
                                    "print the aggregator's status and the virtual DER "
                                    "tree with live aggregates and each one's last run");

  auto* prices = app.add_subcommand("prices", "price forecasts");
  prices->require_subcommand(1);
  auto* prices_import = prices->add_subcommand(
      "import",
      "publish the forecasts of a CSV file (header node,issued_ms,kind,start_ms,duration_s,"
      "price_per_mwh; kind short_term or long_term) to forecast/price/{node}");
  std::string csv_path;
  prices_import->add_option("file", csv_path, "CSV file")->required()->check(CLI::ExistingFile);

  auto* schedule = app.add_subcommand("schedule", "charging schedules at lowest cost");
  schedule->require_subcommand(1);
  auto* schedule_request = schedule->add_subcommand(
      "request", "send a ScheduleRequest and print the result (and its delivery to the DER)");
  derms::v1::ScheduleRequest sq;
  std::string sq_id, sq_node, sq_der, earliest = "+0s", ready_by;
  double max_charge_kw = 0, energy_kwh = 0;
  std::optional<double> soc_pct, capacity_kwh, efficiency, undelivered_price;
  bool no_execute = false;
  schedule_request->add_option("--request-id", sq_id, "default: generated");
  schedule_request->add_option("--node", sq_node, "pricing node");
  schedule_request->add_option("--der", sq_der, "DER to schedule (and send the schedule to)");
  schedule_request->add_option("--max-charge-kw", max_charge_kw, "charge power limit, kW")
      ->required();
  schedule_request->add_option("--energy-kwh", energy_kwh, "energy to store by ready-by, kWh")
      ->required();
  schedule_request->add_option("--earliest", earliest,
                               "earliest start: epoch ms, ISO-8601 UTC or +N[smhd] (default now)");
  schedule_request->add_option("--ready-by", ready_by, "ready by: same forms")->required();
  schedule_request->add_option("--soc-pct", soc_pct, "state of charge now, %");
  schedule_request->add_option("--capacity-kwh", capacity_kwh, "storage capacity, kWh");
  schedule_request->add_option("--efficiency", efficiency, "charging efficiency, (0, 1]");
  schedule_request->add_option("--undelivered-price", undelivered_price,
                               "price per MWh of energy left undelivered");
  schedule_request->add_flag("--no-execute", no_execute, "do not send the schedule to the DER");
  schedule_request->add_option("--wait", c.wait_s, "seconds to wait for answers (default 5)");
  auto* schedule_get =
      schedule->add_subcommand("get", "print the latest result of an earlier request, by its id");
  std::string get_id;
  schedule_get->add_option("request_id", get_id, "request id")->required();

  auto* watch = app.add_subcommand("watch", "print every message under FILTER as a JSON line");
  std::string filter = "#";
  int count = 0;
  watch->add_option("filter", filter, "topic filter, relative to derms/v1/ (default #)");
  watch->add_option("--count", count, "stop after this many messages");
  watch->add_option("--timeout", c.wait_s, "stop after this many seconds (0: never)");
  c.wait_s = 5;
  // backup and restore work on the database file: no broker.
  auto backup_commands = derms::dermsctl::AddBackupCommands(app);
  // query reads the database file: no broker. The empty hook is where the
  // rollups virtual table module gets registered on its connection.
  auto query = derms::dermsctl::AddQueryCommand(app, derms::storage::RegisterRollups);
  // Timestamps (issued_at_ms, timestamp_ms) come from the same clock as the
  // fleet's and the aggregator's when they run in simulated time.
  derms::ClockFlags clock_flags;
  clock_flags.AddTo(&app);
  // slots reads the database: no broker.
  auto slots = derms::dermsctl::AddSlotsCommand(
      app, [&clock_flags](const std::string& flag, const std::string& text) {
        return ParseTime(flag, text, clock_flags.Make().NowMs());
      });
  CLI11_PARSE(app, argc, argv);
  if (*query.app) return query.run();
  if (*slots.app) return slots.run();
  for (auto& x : backup_commands) {
    if (*x.app) return x.run();
  }

  std::atomic<bool>& stop = derms::InstallStopSignals();
  int64_t now = clock_flags.Make().NowMs();
  auto check_id = [](const char* what, const std::string& id) {
    Status s = topics::ValidateId(what, id);
    if (!s.ok()) {
      fmt::print(stderr, "dermsctl: {}\n", s.message());
      std::exit(2);
    }
  };
  if (*grid) {
    check_id("--substation", substation);
    g.set_substation_id(substation);
    g.set_timestamp_ms(now);
    g.set_load_kw(load_kw);
    g.set_supply_kw(supply_kw);
    g.set_frequency_hz(frequency_hz);
    g.set_voltage_pu(voltage_pu);
    return Request(c, topics::GridStatus(substation), derms::codec::ToJson(g), "", nullptr);
  }
  if (*dispatch) {
    check_id("--vder", vder_id);
    derms::v1::DispatchRequest r;
    r.set_request_id(request_id.empty() ? fmt::format("req-{}", now) : request_id);
    r.set_target_kw(target_kw);
    r.set_start_ms(start_ms);
    r.set_duration_s(static_cast<uint32_t>(duration_s));
    return Request(c, topics::VderDispatch(vder_id), derms::codec::ToJson(r),
                   topics::VderDispatchResult(vder_id), [&](const derms::mqtt::Message& a) {
                     derms::v1::DispatchResult result;
                     return derms::codec::ParseOperator(a.payload, a.topic, &result).ok() &&
                            result.request_id() == r.request_id();
                   });
  }
  if (*control) {
    check_id("--der", der_id);
    derms::v1::Control k;
    k.set_command_id(command_id.empty() ? fmt::format("ctl-{}", now) : command_id);
    k.set_issued_at_ms(now);
    k.set_priority(priority);
    k.set_der_id(der_id);
    auto* iv = k.add_intervals();
    iv->set_start_ms(start_ms);
    iv->set_duration_s(static_cast<uint32_t>(duration_s));
    iv->set_target_kw(target_kw);
    return Request(c, topics::DerControl(der_id), derms::codec::ToBinary(k),
                   topics::DerResponse(der_id), [&](const derms::mqtt::Message& a) {
                     derms::v1::ControlResponse resp;
                     if (!derms::codec::ParseBinary(a.payload, a.topic, &resp).ok()) return false;
                     auto st = resp.status();
                     return resp.command_id() == k.command_id() && st != derms::v1::RECEIVED &&
                            st != derms::v1::APPLIED && st != derms::v1::CLAMPED;
                   });
  }
  if (*status) return PrintStatus(c);
  if (*prices_import) return ImportPrices(c, csv_path);
  if (*schedule_get) {
    check_id("request_id", get_id);
    // A request carrying only the id is answered with that request's result.
    derms::v1::ScheduleRequest lookup;
    lookup.set_request_id(get_id);
    return Request(c, topics::ScheduleRequest(), derms::codec::ToJson(lookup),
                   topics::ScheduleResult(get_id), [](const mqtt::Message&) { return true; });
  }
  if (*schedule_request) {
    sq.set_request_id(sq_id.empty() ? fmt::format("sched-{}", now) : sq_id);
    check_id("--request-id", sq.request_id());
    if (!sq_node.empty()) check_id("--node", sq_node);
    if (!sq_der.empty()) check_id("--der", sq_der);
    sq.set_node(sq_node);
    sq.set_der_id(sq_der);
    sq.set_max_charge_kw(max_charge_kw);
    sq.set_energy_kwh(energy_kwh);
    auto from = ParseTime("--earliest", earliest, now);
    auto to = ParseTime("--ready-by", ready_by, now);
    if (!from.ok()) return Fail(from.status().message());
    if (!to.ok()) return Fail(to.status().message());
    sq.set_earliest_start_ms(*from);
    sq.set_ready_by_ms(*to);
    if (soc_pct) sq.set_soc_pct(*soc_pct);
    if (capacity_kwh) sq.set_capacity_kwh(*capacity_kwh);
    if (efficiency) sq.set_efficiency(*efficiency);
    if (undelivered_price) sq.set_undelivered_price_per_mwh(*undelivered_price);
    if (no_execute) sq.set_execute(false);
    return Request(c, topics::ScheduleRequest(), derms::codec::ToJson(sq),
                   topics::ScheduleResult(sq.request_id()), [](const mqtt::Message& a) {
                     derms::v1::ScheduleResult r;
                     if (!derms::codec::ParseOperator(a.payload, a.topic, &r).ok()) return false;
                     // Solved and sent to a DER: wait for its delivery too.
                     return r.status() != derms::v1::SCHEDULE_SOLVED || r.command_id().empty();
                   });
  }
  return Watch(c, filter, count, stop);
}
