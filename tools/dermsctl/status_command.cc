#include "tools/dermsctl/status_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "common/codec.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"

namespace derms::dermsctl {
namespace {

constexpr char kCommand[] = "status";

// The retained statuses: the aggregator's, and each virtual DER's by path.
struct Snapshot {
  bool have_aggregator = false;
  v1::AggregatorStatus aggregator;
  std::map<std::string, v1::VirtualDerStatus> by_path;
};

void PrintAggregator(const Snapshot& snapshot) {
  if (!snapshot.have_aggregator) {
    fmt::print("aggregator: no status published yet\n");
    return;
  }
  const auto& agg = snapshot.aggregator;
  fmt::print("aggregator {}: {}/{} DERs online, {} messages accepted, {} rejected\n",
             agg.online() ? "online" : "OFFLINE", agg.ders_online(), agg.ders_known(),
             agg.messages_accepted(), agg.messages_rejected());
}

// One node of the tree, indented by its depth, with its grid status and its
// own last run under it.
void PrintVirtualDer(const std::string& path, const v1::VirtualDerStatus& v) {
  size_t depth = static_cast<size_t>(std::count(path.begin(), path.end(), '/'));
  std::string label = std::string(2 * depth, ' ') + v.vder_id();
  fmt::print(
      "  {:<22} {:<11} DERs {:>4}/{:<4} output {:>+8.1f} kW  up {:>7.1f} down {:>7.1f} kW  "
      "{:>7.1f} kWh  target {:>+8.1f} kW\n",
      label, v.dispatchable() ? v.policy() : "view", v.members_online(), v.members_total(),
      v.output_kw(), v.available_discharge_kw(), v.available_charge_kw(), v.energy_available_kwh(),
      v.target_kw());
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

int Run(const GlobalFlags& globals) {
  auto session = BrokerSession::Open(globals.broker);
  if (!session.ok()) return Fail(kCommand, session.status().message());
  Status s = (*session)->Subscribe({topics::AggregatorStatus(), topics::Filter("vder/+/status")});
  if (!s.ok()) return Fail(kCommand, s.message());
  Snapshot snapshot;
  // Retained messages arrive at once; a short quiet spell means we have them all.
  while (auto m = (*session)->Next(std::chrono::milliseconds(300))) {
    if (m->topic == topics::AggregatorStatus()) {
      snapshot.have_aggregator =
          codec::ParseOperator(m->payload, m->topic, &snapshot.aggregator).ok();
      continue;
    }
    v1::VirtualDerStatus v;
    if (!m->payload.empty() && codec::ParseOperator(m->payload, m->topic, &v).ok()) {
      snapshot.by_path[v.path().empty() ? v.vder_id() : v.path()] = v;
    }
  }
  session.value().reset();  // disconnects: all there is to read has been read
  PrintAggregator(snapshot);
  for (const auto& [path, v] : snapshot.by_path) PrintVirtualDer(path, v);
  return 0;
}

}  // namespace

Subcommand AddStatusCommand(CLI::App& app, const GlobalFlags& globals) {
  auto* cmd = app.add_subcommand(kCommand,
                                 "print the aggregator's status and the virtual DER "
                                 "tree with live aggregates and each one's last run");
  return {cmd, [&globals] { return Run(globals); }};
}

}  // namespace derms::dermsctl
