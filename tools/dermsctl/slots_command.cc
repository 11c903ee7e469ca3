#include "tools/dermsctl/slots_command.h"

#include <fmt/format.h>

#include <memory>

#include "cloud_aggregator/history/slots.h"
#include "cloud_aggregator/storage/rollup_reader.h"
#include "common/clock.h"
#include "common/topics.h"

namespace derms::dermsctl {
namespace {

constexpr char kCommand[] = "slots";

struct SlotsArgs {
  std::string db = "./var/derms.db";
  std::string vder;
  double min_kw = 0;
  std::string from = "-7d";
  std::string to = "+0s";
  std::string resolution = "5m";
  std::string format = "table";
};

int Run(const SlotsArgs& a, const TimeParser& parse_time) {
  derms::Status id_ok = derms::topics::ValidateId("--vder", a.vder);
  if (!id_ok.ok()) return Fail(kCommand, id_ok.message());
  derms::Status min_ok = CheckFinite("--min-kw", a.min_kw);
  if (!min_ok.ok()) return Fail(kCommand, min_ok.message(), kExitBadArgument);
  int64_t resolution_s = derms::history::ParseResolution(a.resolution);
  if (resolution_s == 0) {
    return Fail(kCommand, fmt::format("--resolution '{}' is not one of 5m, 1h, 1d", a.resolution));
  }
  auto from = parse_time("--from", a.from);
  auto to = parse_time("--to", a.to);
  if (!from.ok()) return Fail(kCommand, from.status().message());
  if (!to.ok()) return Fail(kCommand, to.status().message());
  if (*from >= *to) {
    return Fail(kCommand, fmt::format("--from {} must be before --to {}", derms::FormatUtc(*from),
                                      derms::FormatUtc(*to)));
  }
  auto buckets = derms::storage::ReadSeries(a.db, resolution_s, "vder", a.vder, *from, *to);
  if (!buckets.ok()) return Fail(kCommand, buckets.status().message());
  auto slots = derms::history::FindSlots(*buckets, resolution_s, a.min_kw);
  if (a.format == "json") {
    std::string out = "[";
    for (const auto& s : slots) {
      out += fmt::format(
          "{}{{\"start_ms\":{},\"end_ms\":{},\"start\":\"{}\",\"end\":\"{}\",\"buckets\":{},"
          "\"min_capacity_kw\":{},\"mean_capacity_kw\":{}}}",
          out.size() > 1 ? "," : "", s.start_ms, s.end_ms, derms::FormatUtc(s.start_ms),
          derms::FormatUtc(s.end_ms), s.buckets, s.min_capacity_kw, s.mean_capacity_kw);
    }
    fmt::print("{}]\n", out);
    return 0;
  }
  fmt::print("vder '{}': {} {} bucket(s) with data from {} to {}; capacity >= {} kW in:\n", a.vder,
             buckets->size(), a.resolution, derms::FormatUtc(*from), derms::FormatUtc(*to),
             a.min_kw);
  fmt::print("{:<24} {:<24} {:>8} {:>12} {:>12}\n", "start", "end", "buckets", "min_kw", "mean_kw");
  for (const auto& s : slots) {
    fmt::print("{:<24} {:<24} {:>8} {:>12.1f} {:>12.1f}\n", derms::FormatUtc(s.start_ms),
               derms::FormatUtc(s.end_ms), s.buckets, s.min_capacity_kw, s.mean_capacity_kw);
  }
  fmt::print("({} slot(s))\n", slots.size());
  return 0;
}

}  // namespace

Subcommand AddSlotsCommand(CLI::App& app, TimeParser parse_time) {
  auto args = std::make_shared<SlotsArgs>();
  CLI::App* cmd = app.add_subcommand(
      kCommand,
      "the time slots when a virtual DER's aggregated available capacity (rollups' "
      "capacity_kw) was at least --min-kw");
  cmd->add_option("--vder", args->vder, "virtual DER id")->required();
  cmd->add_option("--min-kw", args->min_kw, "capacity threshold, kW")->required();
  cmd->add_option("--from", args->from,
                  "start: epoch ms, ISO-8601 UTC or -N[smhd]/+N[smhd] from now (default -7d)");
  cmd->add_option("--to", args->to, "end, exclusive: same forms (default now)");
  cmd->add_option("--resolution", args->resolution, "5m, 1h or 1d (default 5m)");
  cmd->add_option("--db", args->db, "database (default ./var/derms.db)");
  cmd->add_option("--format", args->format, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  return {cmd, [args, parse_time] { return Run(*args, parse_time); }};
}

}  // namespace derms::dermsctl
