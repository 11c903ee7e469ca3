// dermsctl dispatch: sends a DispatchRequest to a virtual DER and prints the
// DispatchResult that answers it.
#ifndef DERMS_TOOLS_DERMSCTL_DISPATCH_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_DISPATCH_COMMAND_H_

#include <CLI/CLI.hpp>

#include "tools/dermsctl/global_flags.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds `dispatch --vder ID --target-kw KW [--duration-s S] [--start-ms MS]
// [--request-id ID] [--wait S]` to `app`; it reads `globals` when it runs.
Subcommand AddDispatchCommand(CLI::App& app, const GlobalFlags& globals);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_DISPATCH_COMMAND_H_
