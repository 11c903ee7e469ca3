// A dermsctl subcommand that lives in a file of its own.
#ifndef DERMS_TOOLS_DERMSCTL_SUBCOMMAND_H_
#define DERMS_TOOLS_DERMSCTL_SUBCOMMAND_H_

#include <CLI/CLI.hpp>
#include <functional>

namespace derms::dermsctl {

struct Subcommand {
  // The subcommand; after parsing, `*app` is true when it was chosen.
  CLI::App* app = nullptr;
  // Runs it: output on stdout, errors on stderr as "dermsctl: ...". Returns
  // the exit code (0, else 1). REQUIRES: the command line has been parsed.
  std::function<int()> run;
};

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_SUBCOMMAND_H_
