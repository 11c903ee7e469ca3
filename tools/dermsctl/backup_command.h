// dermsctl backup and restore: verified, rotated online backups of the
// aggregator's SQLite history, and restore from one. Needs no broker: they
// work on the database file directly (see cloud_aggregator/storage/backup.h).
//
//   dermsctl backup [--db PATH] --dir DIR [--keep N] [--command CMD]
//                   [--command-timeout-s S]
//   dermsctl backup --verify FILE
//   dermsctl backup --list --dir DIR
//   dermsctl restore FILE [--db PATH] [--no-keep-previous]
#ifndef DERMS_TOOLS_DERMSCTL_BACKUP_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_BACKUP_COMMAND_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds `backup` and `restore` to `app` (in that order). Their options live
// as long as the returned objects.
std::vector<Subcommand> AddBackupCommands(CLI::App& app);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_BACKUP_COMMAND_H_
