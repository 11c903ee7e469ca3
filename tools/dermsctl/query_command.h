// dermsctl query: one read-only SQL statement on the aggregator's SQLite
// history, printed as a table, CSV or JSON. Needs no broker: it reads the
// database file directly, next to a running aggregator (WAL mode, so the
// aggregator's writer is never held up).
#ifndef DERMS_TOOLS_DERMSCTL_QUERY_COMMAND_H_
#define DERMS_TOOLS_DERMSCTL_QUERY_COMMAND_H_

#include <CLI/CLI.hpp>
#include <functional>

#include "cloud_aggregator/storage/query.h"
#include "common/status.h"
#include "tools/dermsctl/subcommand.h"

namespace derms::dermsctl {

// Adds `query [--db PATH] [--format table|csv|json] [--timeout SECONDS]
// [--max-rows N] SQL` to `app`. `prepare_connection` is passed on as
// storage::QueryOptions::prepare_connection: the hook that registers the
// aggregator's `rollups` virtual table module on the query's connection; it
// may be empty (then `rollups` is unknown to queries).
Subcommand AddQueryCommand(CLI::App& app, storage::ConnectionHook prepare_connection);

}  // namespace derms::dermsctl

#endif  // DERMS_TOOLS_DERMSCTL_QUERY_COMMAND_H_
