// dermsctl control: sends a Control (one setpoint interval) to a DER and
// prints its responses until the final one.
#ifndef DERMS_TOOLS_DERMSCTL_CONTROL_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_CONTROL_COMMAND_H_

#include <CLI/CLI.hpp>

#include "tools/dermsctl/global_flags.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds `control --der ID --target-kw KW [--duration-s S] [--start-ms MS]
// [--command-id ID] [--priority N] [--wait S]` to `app`; it reads `globals`
// when it runs.
Subcommand AddControlCommand(CLI::App& app, const GlobalFlags& globals);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_CONTROL_COMMAND_H_
