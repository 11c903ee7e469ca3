// dermsctl slots: when a virtual DER's aggregated available capacity stayed
// at or above a threshold, from the stored rollups (no broker needed).
#ifndef DERMS_TOOLS_DERMSCTL_SLOTS_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_SLOTS_COMMAND_H_

#include <CLI/CLI.hpp>

#include "tools/dermsctl/arguments.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds `slots` to `app`; the returned function runs it when it was chosen.
// `parse_time` reads --from and --to.
Subcommand AddSlotsCommand(CLI::App& app, TimeParser parse_time);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_SLOTS_COMMAND_H_
