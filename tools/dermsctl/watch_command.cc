#include "tools/dermsctl/watch_command.h"

#include <memory>
#include <string>

#include "common/topics.h"

namespace derms::dermsctl {
namespace {

constexpr char kCommand[] = "watch";

struct WatchArgs {
  std::string filter = "#";  // relative to derms/v1/ unless it starts with derms/
  int count = 0;             // <= 0: no limit
  double timeout_s = 5;      // 0: never
};

int Run(const WatchArgs& a, const GlobalFlags& globals) {
  Status s = CheckWaitSeconds("--timeout", a.timeout_s);
  if (!s.ok()) return Fail(kCommand, s.message(), kExitBadArgument);
  const std::string filter = a.filter.rfind("derms/", 0) == 0 ? a.filter : topics::Filter(a.filter);
  auto session = BrokerSession::Open(globals.broker);
  if (!session.ok()) return Fail(kCommand, session.status().message());
  s = (*session)->Subscribe({filter});
  if (!s.ok()) return Fail(kCommand, s.message());
  PrintUntil until;
  until.wait_s = a.timeout_s;
  until.count = a.count;
  (*session)->PrintArriving(until);
  return 0;
}

}  // namespace

Subcommand AddWatchCommand(CLI::App& app, const GlobalFlags& globals) {
  auto args = std::make_shared<WatchArgs>();
  auto* cmd = app.add_subcommand(kCommand, "print every message under FILTER as a JSON line");
  cmd->add_option("filter", args->filter, "topic filter, relative to derms/v1/ (default #)");
  cmd->add_option("--count", args->count, "stop after this many messages");
  cmd->add_option("--timeout", args->timeout_s, "stop after this many seconds (0: never)");
  return {cmd, [args, &globals] { return Run(*args, globals); }};
}

}  // namespace derms::dermsctl
