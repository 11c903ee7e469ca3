// dermsctl's top-level flags, which every subcommand may read when it runs:
// the broker to use and the clock that timestamps (issued_at_ms,
// timestamp_ms) and relative times (+4h) are read from.
#ifndef DERMS_TOOLS_DERMSCTL_GLOBAL_FLAGS_H_
#define DERMS_TOOLS_DERMSCTL_GLOBAL_FLAGS_H_

#include <CLI/CLI.hpp>
#include <cstdint>

#include "common/cli_overrides.h"
#include "tools/dermsctl/arguments.h"
#include "tools/dermsctl/broker_session.h"

namespace derms::dermsctl {

// Owned by main; the subcommands keep a reference to it, so it outlives them.
struct GlobalFlags {
  // --broker, --username, --password.
  BrokerFlags broker;
  // --time-scale, --time-anchor-ms, --time-start-ms: the same clock as the
  // fleet's and the aggregator's when they run in simulated time.
  ClockFlags clock;

  // Adds the flags above to `app`.
  void AddTo(CLI::App* app);
  // Now on the clock. REQUIRES: the command line has been parsed.
  int64_t NowMs() const { return clock.Make().NowMs(); }
  // ParseTime relative to NowMs() at each call. REQUIRES: *this outlives it.
  TimeParser TimeParserFromNow() const;
};

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_GLOBAL_FLAGS_H_
