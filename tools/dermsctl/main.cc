// dermsctl: the operator's command line. Publishes grid status, dispatch
// requests, controls, price forecasts (from CSV) and charging schedule
// requests, watches any derms/v1 topic as one JSON line per message, and
// queries, backs up and restores the aggregator's history database.
//
// Each subcommand lives in NAME_command.cc; this file only builds the app,
// adds them and runs the one chosen, returning its exit code.

#include <CLI/CLI.hpp>
#include <utility>
#include <vector>

#include "cloud_aggregator/storage/rollup_reader.h"
#include "tools/dermsctl/backup_command.h"
#include "tools/dermsctl/control_command.h"
#include "tools/dermsctl/curtail_command.h"
#include "tools/dermsctl/dispatch_command.h"
#include "tools/dermsctl/feeder_command.h"
#include "tools/dermsctl/global_flags.h"
#include "tools/dermsctl/grid_command.h"
#include "tools/dermsctl/prices_command.h"
#include "tools/dermsctl/query_command.h"
#include "tools/dermsctl/schedule_command.h"
#include "tools/dermsctl/slots_command.h"
#include "tools/dermsctl/status_command.h"
#include "tools/dermsctl/subcommand.h"
#include "tools/dermsctl/watch_command.h"

namespace {

using derms::dermsctl::Subcommand;

void Append(std::vector<Subcommand>* to, std::vector<Subcommand> more) {
  for (Subcommand& command : more) to->push_back(std::move(command));
}

}  // namespace

int main(int argc, char** argv) {
  namespace ctl = derms::dermsctl;
  CLI::App app{"dermsctl: publish grid status, dispatch requests and controls; watch topics."};
  app.require_subcommand(1);
  ctl::GlobalFlags globals;
  globals.AddTo(&app);

  std::vector<Subcommand> commands = {
      ctl::AddGridCommand(app, globals), ctl::AddDispatchCommand(app, globals),
      ctl::AddCurtailCommand(app, globals),
      ctl::AddControlCommand(app, globals), ctl::AddStatusCommand(app, globals)};
  Append(&commands, ctl::AddPricesCommands(app, globals));
  Append(&commands, ctl::AddScheduleCommands(app, globals));
  commands.push_back(ctl::AddWatchCommand(app, globals));
  // backup, restore, query and slots work on the database file: no broker.
  Append(&commands, ctl::AddBackupCommands(app));
  // RegisterRollups registers the rollups virtual table module on the
  // query's connection.
  commands.push_back(ctl::AddQueryCommand(app, derms::storage::RegisterRollups));
  commands.push_back(ctl::AddSlotsCommand(app, globals.TimeParserFromNow()));
  // feeder powerflow and curtail work on the feeder's files: no broker.
  Append(&commands, ctl::AddFeederCommands(app));

  CLI11_PARSE(app, argc, argv);
  for (const Subcommand& command : commands) {
    if (*command.app) return command.run();
  }
  return ctl::kExitFailure;  // unreachable: CLI11 requires one (leaf) subcommand
}
