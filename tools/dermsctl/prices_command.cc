#include "tools/dermsctl/prices_command.h"

#include <fmt/format.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "cloud_aggregator/scheduling/price_book.h"
#include "common/codec.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"

namespace derms::dermsctl {
namespace {

constexpr char kImportCommand[] = "prices import";

v1::PriceForecast ToWire(const scheduling::PriceForecast& f) {
  v1::PriceForecast wire;
  wire.set_node(f.node);
  wire.set_issued_ms(f.issued_ms);
  wire.set_kind(f.kind == scheduling::ForecastKind::kLongTerm ? v1::LONG_TERM : v1::SHORT_TERM);
  for (const auto& iv : f.intervals) {
    auto* out = wire.add_intervals();
    out->set_start_ms(iv.start_ms);
    out->set_duration_s(static_cast<uint32_t>(iv.duration_s));
    out->set_price_per_mwh(iv.price_per_mwh);
  }
  return wire;
}

int RunImport(const std::string& path, const GlobalFlags& globals) {
  std::ifstream in(path);
  if (!in) return Fail(kImportCommand, fmt::format("cannot read '{}'", path));
  std::stringstream text;
  text << in.rdbuf();
  auto forecasts = scheduling::ParsePriceCsv(text.str(), path);
  if (!forecasts.ok()) return Fail(kImportCommand, forecasts.status().message());
  auto session = BrokerSession::Open(globals.broker);
  if (!session.ok()) return Fail(kImportCommand, session.status().message());
  size_t intervals = 0;
  for (const auto& f : *forecasts) {
    Status s = (*session)->Publish(topics::PriceForecast(f.node), codec::ToJson(ToWire(f)));
    if (!s.ok()) return Fail(kImportCommand, s.message());
    intervals += f.intervals.size();
  }
  fmt::print("published {} forecasts ({} intervals) from {}\n", forecasts->size(), intervals, path);
  return 0;
}

}  // namespace

std::vector<Subcommand> AddPricesCommands(CLI::App& app, const GlobalFlags& globals) {
  auto* prices = app.add_subcommand("prices", "price forecasts");
  prices->require_subcommand(1);
  auto path = std::make_shared<std::string>();
  auto* import = prices->add_subcommand(
      "import",
      "publish the forecasts of a CSV file (header node,issued_ms,kind,start_ms,duration_s,"
      "price_per_mwh; kind short_term or long_term) to forecast/price/{node}");
  import->add_option("file", *path, "CSV file")->required()->check(CLI::ExistingFile);
  return {{import, [path, &globals] { return RunImport(*path, globals); }}};
}

}  // namespace derms::dermsctl
