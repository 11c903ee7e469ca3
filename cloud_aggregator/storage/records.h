// What the aggregator's modules hand to storage: one plain struct per kind
// of row, with no SQLite in sight. Modules add them through the RecordSink
// port (cloud_aggregator/core/ports.h); the Store commits them in batches.
#ifndef DERMS_CLOUD_AGGREGATOR_STORAGE_RECORDS_H_
#define DERMS_CLOUD_AGGREGATOR_STORAGE_RECORDS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "cloud_aggregator/history/rollup.h"
#include "derms/v1/derms.pb.h"

namespace derms::storage {

struct BirthRecord {
  derms::v1::DerBirth birth;
  int64_t received_ms;
};
struct StatusRecord {
  std::string der_id;
  bool online;
  uint64_t bd_seq;
  std::string cause;  // "status", "will", "birth", "silence", "telemetry"
  int64_t timestamp_ms;
  int64_t received_ms;
};
struct TelemetryRecord {
  derms::v1::Telemetry telemetry;
  int64_t received_ms;
};
// Telemetry held apart (table telemetry_quarantine): it broke a plausibility
// rule against its DER's nameplate or the clock, or came from a DER with no
// birth to check it against. Kept for inspection; never in `telemetry`, so
// never in the rollups.
struct QuarantineRecord {
  derms::v1::Telemetry telemetry;
  std::string reason;  // the rule's code, as counted: "implausible", "no_birth"
  std::string detail;  // names the DER, the field, the value and the rule
  int64_t received_ms;
};
struct ControlRecord {
  derms::v1::Control control;
  std::string der_id;
  int64_t run_id;  // the dispatch run that sent it, 0 if none
};
struct ResponseRecord {
  derms::v1::ControlResponse response;
  std::string der_id;
  int64_t received_ms;
};
struct GridStatusRecord {
  derms::v1::GridStatus grid;
  int64_t received_ms;
};
// One member's part in a dispatch run: the inputs its setpoint came from
// and what became of it. Only members given a setpoint are recorded.
struct AllocationRow {
  std::string der_id;
  std::string vder_id;  // the virtual DER that claims it
  int64_t round = 0;    // round of the last control sent
  double baseline_kw = 0;
  double min_kw = 0;
  double max_kw = 0;
  double soc_pct = -1;  // negative: none (stored as NULL)
  double cost = 0;
  double target_kw = 0;
  double applied_kw = 0;
  std::string state;  // APPLIED, CLAMPED, FAILED, NO_ANSWER
  std::string command_id;
  std::string reason;
};
// A finished dispatch run: each workflow stage's inputs and outputs.
struct DispatchRunRecord {
  int64_t run_id = 0;
  std::string vder_id;
  std::string policy;
  std::string trigger;        // "grid_status" or "dispatch_request"
  std::string request_id;     // for a dispatch request
  std::string substation_id;  // for a grid status
  std::string outcome;        // "completed", "superseded", "reconfigured", "stopped"
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  int64_t duration_s = 0;
  // Stage 1 (grid runs).
  bool has_grid = false;
  derms::v1::GridStatus grid;
  // Stages 2 and 3.
  uint32_t members_active = 0;
  double baseline_kw = 0, min_kw = 0, max_kw = 0, battery_max_discharge_kw = 0;
  // Stages 4 and 5.
  double imbalance_kw = 0, frequency_kw = 0, requested_kw = 0, command_kw = 0;
  // Stage 6 and the closed loop.
  double planned_kw = 0, achieved_kw = 0, shortfall_kw = 0;
  uint32_t rounds = 0, applied = 0, clamped = 0, failed = 0, no_answer = 0;
  std::string reason;
  std::vector<AllocationRow> allocations;
};

// A price forecast as received (one row per interval). The merged price
// timeline is rebuilt from these, in arrival order, when the aggregator starts.
struct PriceForecastRecord {
  derms::v1::PriceForecast forecast;
  int64_t received_ms;
};
// Removes forecast rows whose interval ended before `before_ms`.
struct PurgePricesRecord {
  int64_t before_ms;
};
// A charging schedule request and its latest status (upserted by request_id),
// each status also kept as an event: its lifecycle.
struct ScheduleRecord {
  derms::v1::ScheduleRequest request;
  derms::v1::ScheduleResult result;
  int64_t received_ms;
  int64_t updated_ms;
};

// One rollup bucket of a series: kind "der" or "vder", at 300, 3600 or 86400 s.
struct RollupRow {
  int64_t resolution_s = 0;
  std::string kind;
  std::string id;
  history::Bucket bucket;
};
// A sealed chunk of buckets (history/chunk_codec) replacing the open rows of
// its span.
struct ChunkRow {
  int64_t resolution_s = 0;
  std::string kind;
  std::string id;
  int64_t chunk_ms = 0;
  int64_t buckets = 0;
  std::string data;
};
// What one step of the history jobs writes, in one transaction: new or
// revised open buckets, sealed chunks (their open rows go), late-sample marks
// dealt with, and the jobs' progress.
struct HistoryWriteRecord {
  std::vector<RollupRow> open_rows;
  std::vector<ChunkRow> chunks;
  std::vector<std::pair<std::string, int64_t>> handled_late;  // (der_id, bucket_ms)
  std::vector<std::pair<std::string, int64_t>> state;         // history_state key -> value
};
// Deletes at most `limit` rows older than `before_ms`: raw telemetry and
// quarantined telemetry (resolution_s 0) or the rollups of one resolution (whole chunks only).
struct ExpireRecord {
  int64_t resolution_s = 0;
  int64_t before_ms = 0;
  int64_t limit = 5000;
};
// Which DERs each virtual DER holds now (replaces the whole table): the
// history jobs sum members' rollups into the virtual DER's.
struct VderMembersRecord {
  std::vector<std::pair<std::string, std::vector<std::string>>> members;
};
// Something announced on events/{kind} (reports, backups), kept.
struct EventRecord {
  std::string kind;
  std::string name;
  int64_t timestamp_ms = 0;
  std::string payload_json;
};

// A table a module keeps for itself: "CREATE TABLE IF NOT EXISTS ..." (and
// its indexes), run by the writer before any row after it. Modules declare
// theirs (Module::Tables) and the core adds them at start, so a new feature
// with tables of its own (incidents, notifications, ...) never touches the
// Store or this variant.
struct TableSchemaRecord {
  std::string create_sql;
};
// One row of such a table. Names are identifiers ([A-Za-z_][A-Za-z0-9_]*);
// values bind in column order (monostate is NULL). `replace` upserts by the
// table's primary key (INSERT OR REPLACE).
using RowValue = std::variant<std::monostate, int64_t, double, std::string>;
struct TableRowRecord {
  std::string table;
  std::vector<std::string> columns;
  std::vector<RowValue> values;
  bool replace = false;
};

// The rows above that predate modules keep their own alternatives (and
// their statements in the Store); new features use TableRowRecord.
using Record =
    std::variant<BirthRecord, StatusRecord, TelemetryRecord, QuarantineRecord, ControlRecord,
                 ResponseRecord, GridStatusRecord, DispatchRunRecord, PriceForecastRecord,
                 PurgePricesRecord, ScheduleRecord, HistoryWriteRecord, ExpireRecord,
                 VderMembersRecord, EventRecord, TableSchemaRecord, TableRowRecord>;

}  // namespace derms::storage

#endif  // DERMS_CLOUD_AGGREGATOR_STORAGE_RECORDS_H_
