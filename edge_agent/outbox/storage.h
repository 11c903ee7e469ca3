// The storage port of the telemetry outbox: an ordered list of records that
// survives what its adapter promises (memory: nothing; SQLite: a kill or a
// power loss once a call has returned ok). No policy here: caps, order of
// sending and acknowledgements are the Outbox's (outbox.h).
#ifndef DERMS_EDGE_AGENT_OUTBOX_STORAGE_H_
#define DERMS_EDGE_AGENT_OUTBOX_STORAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace derms::edge {

// One kept sample: its wire payload and what the policy orders and ages it by.
struct OutboxRecord {
  int64_t id = 0;  // ascending in append order, never reused
  uint64_t seq = 0;
  int64_t timestamp_ms = 0;
  std::string payload;
};

// Records and bytes held (payload bytes), and the records ever dropped by
// the caps: a counter kept with the records, so it survives a restart too.
struct OutboxTotals {
  uint64_t rows = 0;
  uint64_t bytes = 0;
  uint64_t dropped = 0;
};

// Not thread-safe: one owner (the agent's loop).
class OutboxStorage {
 public:
  virtual ~OutboxStorage() = default;
  // Appends a record; its id is above every id handed out before.
  [[nodiscard]] virtual StatusOr<int64_t> Append(uint64_t seq, int64_t timestamp_ms,
                                                 const std::string& payload) = 0;
  // Up to `limit` records with id > `after_id`, ascending.
  [[nodiscard]] virtual StatusOr<std::vector<OutboxRecord>> ReadAfter(int64_t after_id,
                                                                      size_t limit) = 0;
  // Removes the records `ids` (absent ones are ignored) and adds `dropped` to
  // the dropped counter, in one step: all of it or none.
  [[nodiscard]] virtual Status Remove(const std::vector<int64_t>& ids, uint64_t dropped) = 0;
  virtual OutboxTotals Totals() const = 0;
};

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_OUTBOX_STORAGE_H_
