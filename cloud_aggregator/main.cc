// derms-aggregator: the cloud side. Subscribes to the fleet, keeps every
// DER's state and history in SQLite, builds the virtual DERs and runs the
// dispatch workflow. SIGHUP re-reads the virtual DERs from --config.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <string>

#include "cloud_aggregator/service/aggregator.h"
#include "common/cli_overrides.h"
#include "common/clock.h"
#include "common/option_set.h"
#include "common/logging.h"
#include "common/signals.h"

int main(int argc, char** argv) {
  using derms::aggregator::AggregatorOptions;
  CLI::App app{
      "derms-aggregator: the DERMS cloud aggregator.\n"
      "Settings come from --config FILE (TOML, see cloud_aggregator/aggregator.example.toml);\n"
      "flags override the file."};
  AggregatorOptions options;
  std::string config_path;
  std::string log_level = "info";
  derms::ClockFlags clock_flags;
  app.add_option("--config", config_path, "TOML configuration file")->check(CLI::ExistingFile);
  // Each flag is declared with its key (AggregatorOptions::Describe), and
  // its help is the key's documentation.
  derms::config::OptionSet keys;
  options.Describe(keys);
  derms::CliOverrides o(&app);
  o.AddFlags(keys);
  clock_flags.AddTo(&app);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);

  derms::Status s = derms::logging::Init("aggregator", log_level);
  if (!s.ok()) {
    fmt::print(stderr, "{}\n", s.message());
    return 2;
  }
  if (!config_path.empty()) {
    s = derms::aggregator::LoadAggregatorOptions(config_path, &options);
    if (!s.ok()) {
      spdlog::error("{}", s.message());
      return 2;
    }
  }
  o.Apply();
  s = options.Validate();
  if (!s.ok()) {
    spdlog::error("configuration: {}", s.message());
    return 2;
  }
  derms::Clock clock = clock_flags.Make();
  auto aggregator = derms::aggregator::Aggregator::Create(options, clock);
  if (!aggregator.ok()) {
    spdlog::error("{}", aggregator.status().message());
    return 1;
  }
  spdlog::info("aggregator starting: broker {}, database {}", options.broker_uri, options.db_path);
  (*aggregator)->Run(derms::InstallStopSignals(), &derms::InstallReloadSignal());
  auto stats = (*aggregator)->stats();
  spdlog::info("stopped: {} messages accepted, {} rejected, {} dispatch runs; database {}",
               stats.accepted, stats.rejected, stats.dispatch_runs, options.db_path);
  return 0;
}
