// dermsctl watch: prints every message under a topic filter as one JSON line
// (message_json.h), binary device topics decoded.
#ifndef DERMS_TOOLS_DERMSCTL_WATCH_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_WATCH_COMMAND_H_

#include <CLI/CLI.hpp>

#include "tools/dermsctl/global_flags.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds `watch [FILTER] [--count N] [--timeout S]` to `app`; it reads
// `globals` when it runs.
Subcommand AddWatchCommand(CLI::App& app, const GlobalFlags& globals);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_WATCH_COMMAND_H_
