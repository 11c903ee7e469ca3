// dermsctl status: the aggregator's retained status and the virtual DER tree,
// each node with its live aggregates and its last dispatch run.
#ifndef DERMS_TOOLS_DERMSCTL_STATUS_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_STATUS_COMMAND_H_

#include <CLI/CLI.hpp>

#include "tools/dermsctl/global_flags.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds `status` to `app`; it reads `globals` when it runs.
Subcommand AddStatusCommand(CLI::App& app, const GlobalFlags& globals);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_STATUS_COMMAND_H_
