// dermsctl feeder: the feeder solver from the command line, no broker
// needed. `feeder powerflow` prints every bus and phase's voltage from the
// unbalanced power flow; `feeder curtail` solves a scenario's fair PV
// curtailment (one policy or all, now or over the scenario's day).
#ifndef DERMS_TOOLS_DERMSCTL_FEEDER_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_FEEDER_COMMAND_H_

#include <CLI/CLI.hpp>
#include <vector>

#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds the `feeder` group with `powerflow` and `curtail` to `app`.
std::vector<Subcommand> AddFeederCommands(CLI::App& app);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_FEEDER_COMMAND_H_
