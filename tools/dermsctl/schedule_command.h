// dermsctl schedule: charging schedules at lowest cost. `schedule request`
// sends a ScheduleRequest and prints its result (and the result's delivery
// to the DER); `schedule get ID` prints an earlier request's latest result.
#ifndef DERMS_TOOLS_DERMSCTL_SCHEDULE_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_SCHEDULE_COMMAND_H_

#include <CLI/CLI.hpp>
#include <vector>

#include "tools/dermsctl/global_flags.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds the `schedule` group and its subcommands to `app`; returns the
// subcommands (`schedule request`, `schedule get`), which read `globals`
// when they run.
std::vector<Subcommand> AddScheduleCommands(CLI::App& app, const GlobalFlags& globals);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_SCHEDULE_COMMAND_H_
