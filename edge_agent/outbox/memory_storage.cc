#include "edge_agent/outbox/memory_storage.h"

#include <algorithm>
#include <unordered_set>

namespace derms::edge {

StatusOr<int64_t> MemoryOutboxStorage::Append(uint64_t seq, int64_t timestamp_ms,
                                              const std::string& payload) {
  records_.push_back(OutboxRecord{next_id_, seq, timestamp_ms, payload});
  ++totals_.rows;
  totals_.bytes += payload.size();
  return next_id_++;
}

StatusOr<std::vector<OutboxRecord>> MemoryOutboxStorage::ReadAfter(int64_t after_id, size_t limit) {
  auto it = std::upper_bound(records_.begin(), records_.end(), after_id,
                             [](int64_t id, const OutboxRecord& r) { return id < r.id; });
  std::vector<OutboxRecord> out;
  for (; it != records_.end() && out.size() < limit; ++it) out.push_back(*it);
  return out;
}

Status MemoryOutboxStorage::Remove(const std::vector<int64_t>& ids, uint64_t dropped) {
  std::unordered_set<int64_t> gone(ids.begin(), ids.end());
  auto end = std::remove_if(records_.begin(), records_.end(), [&](const OutboxRecord& r) {
    if (gone.count(r.id) == 0) return false;
    --totals_.rows;
    totals_.bytes -= r.payload.size();
    return true;
  });
  records_.erase(end, records_.end());
  totals_.dropped += dropped;
  return Status::Ok();
}

}  // namespace derms::edge
