// A dermsctl subcommand: each lives in a file of its own (NAME_command.h)
// whose Add function adds it to the app and returns it as one of these; main
// runs the one the command line chose.
#ifndef DERMS_TOOLS_DERMSCTL_SUBCOMMAND_H_
#define DERMS_TOOLS_DERMSCTL_SUBCOMMAND_H_

#include <CLI/CLI.hpp>
#include <functional>

namespace derms::dermsctl {

struct Subcommand {
  // The subcommand; after parsing, `*app` is true when it was chosen.
  CLI::App* app = nullptr;
  // Runs it: output on stdout, errors on stderr as "dermsctl NAME: ..." (see
  // arguments.h; query, backup and restore print "dermsctl: ..."). Returns
  // the exit code: 0, kExitFailure or kExitBadArgument. REQUIRES: the command
  // line has been parsed.
  std::function<int()> run;
};

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_SUBCOMMAND_H_
