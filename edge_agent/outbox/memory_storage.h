// OutboxStorage in memory: nothing survives the process. For agents that
// must not touch the disk (thousands in one simulator process) and for
// tests of the policy.
#ifndef DERMS_EDGE_AGENT_OUTBOX_MEMORY_STORAGE_H_
#define DERMS_EDGE_AGENT_OUTBOX_MEMORY_STORAGE_H_

#include <deque>

#include "edge_agent/outbox/storage.h"

namespace derms::edge {

class MemoryOutboxStorage : public OutboxStorage {
 public:
  StatusOr<int64_t> Append(uint64_t seq, int64_t timestamp_ms, const std::string& payload) override;
  StatusOr<std::vector<OutboxRecord>> ReadAfter(int64_t after_id, size_t limit) override;
  Status Remove(const std::vector<int64_t>& ids, uint64_t dropped) override;
  OutboxTotals Totals() const override { return totals_; }

 private:
  std::deque<OutboxRecord> records_;  // ascending id
  int64_t next_id_ = 1;
  OutboxTotals totals_;
};

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_OUTBOX_MEMORY_STORAGE_H_
