// dermsctl grid: publishes a GridStatus (a substation's load and supply) on
// grid/{substation}/status, as a SCADA feed would.
#ifndef DERMS_TOOLS_DERMSCTL_GRID_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_GRID_COMMAND_H_

#include <CLI/CLI.hpp>

#include "tools/dermsctl/global_flags.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds `grid --substation ID --load-kw KW --supply-kw KW [--frequency-hz HZ]
// [--voltage-pu PU]` to `app`; it reads `globals` when it runs.
Subcommand AddGridCommand(CLI::App& app, const GlobalFlags& globals);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_GRID_COMMAND_H_
