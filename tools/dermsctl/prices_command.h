// dermsctl prices: price forecasts. `prices import FILE` publishes each
// forecast of a CSV file (cloud_aggregator/scheduling/price_book.h has the
// format) to forecast/price/{node}.
#ifndef DERMS_TOOLS_DERMSCTL_PRICES_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_PRICES_COMMAND_H_

#include <CLI/CLI.hpp>
#include <vector>

#include "tools/dermsctl/global_flags.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds the `prices` group and its subcommands to `app`; returns the
// subcommands (`prices import`), which read `globals` when they run.
std::vector<Subcommand> AddPricesCommands(CLI::App& app, const GlobalFlags& globals);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_PRICES_COMMAND_H_
