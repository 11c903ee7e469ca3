// dermsctl curtail: asks the aggregator for a feeder curtailment run over a
// virtual DER's PVs (vder/{id}/curtail) and prints the CurtailResult that
// answers it. (`dermsctl feeder curtail` solves a scenario offline instead.)
#ifndef DERMS_TOOLS_DERMSCTL_CURTAIL_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_CURTAIL_COMMAND_H_

#include <CLI/CLI.hpp>

#include "tools/dermsctl/global_flags.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds `curtail --vder ID [--policy P] [--v-max PU] [--duration-s S]
// [--request-id ID] [--wait S]` to `app`; it reads `globals` when it runs.
Subcommand AddCurtailCommand(CLI::App& app, const GlobalFlags& globals);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_CURTAIL_COMMAND_H_
