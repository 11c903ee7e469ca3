// dermsctl slots: when a virtual DER's aggregated available capacity stayed
// at or above a threshold, from the stored rollups (no broker needed).
#ifndef DERMS_TOOLS_DERMSCTL_SLOTS_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_SLOTS_COMMAND_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Parses a time flag ("--from", text) into epoch ms.
using TimeParser = std::function<StatusOr<int64_t>(const std::string&, const std::string&)>;

// Adds `slots` to `app`; the returned function runs it when it was chosen.
Subcommand AddSlotsCommand(CLI::App& app, TimeParser parse_time);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_SLOTS_COMMAND_H_
