#include "edge_agent/outbox/outbox.h"

#include <algorithm>
#include <utility>

namespace derms::edge {
namespace {
// Records read per storage call while dropping or handing out.
constexpr size_t kBatch = 256;
}  // namespace

Outbox::Outbox(std::unique_ptr<OutboxStorage> storage, OutboxLimits limits)
    : storage_(std::move(storage)), limits_(limits) {}

StatusOr<int64_t> Outbox::Add(uint64_t seq, int64_t timestamp_ms, const std::string& payload,
                              int64_t now_ms) {
  auto id = storage_->Append(seq, timestamp_ms, payload);
  if (!id.ok()) return id;
  Status s = Enforce(now_ms);
  if (!s.ok()) return s;
  return id;
}

Status Outbox::Enforce(int64_t now_ms) {
  const int64_t cutoff_ms = now_ms - limits_.max_age_s * 1000;
  // Read no more than the caps can exclude: over max_rows, that many; over
  // max_bytes, a few; within both, the oldest record alone tells whether any
  // is too old. (At a full outbox every sample drops one: one read, not 256.)
  OutboxTotals first = storage_->Totals();
  size_t read = 1;
  if (first.rows > static_cast<uint64_t>(limits_.max_rows)) {
    read = static_cast<size_t>(
        std::min<uint64_t>(first.rows - static_cast<uint64_t>(limits_.max_rows), kBatch));
  }
  if (first.bytes > static_cast<uint64_t>(limits_.max_bytes)) read = std::max<size_t>(read, 16);
  for (;;) {
    OutboxTotals t = storage_->Totals();
    auto oldest = storage_->ReadAfter(0, read);
    if (!oldest.ok()) return oldest.status();
    uint64_t rows = t.rows;
    uint64_t bytes = t.bytes;
    std::vector<int64_t> remove;
    uint64_t dropped = 0;
    for (const auto& r : *oldest) {
      bool over = rows > static_cast<uint64_t>(limits_.max_rows) ||
                  bytes > static_cast<uint64_t>(limits_.max_bytes) || r.timestamp_ms < cutoff_ms;
      if (!over) break;
      remove.push_back(r.id);
      // Delivered already: leaves, but was not lost.
      if (acked_lookup_.count(r.id) == 0) ++dropped;
      --rows;
      bytes -= std::min<uint64_t>(bytes, r.payload.size());
    }
    if (remove.empty()) return Status::Ok();
    Status s = storage_->Remove(remove, dropped);
    if (!s.ok()) return s;
    for (int64_t id : remove) {
      in_flight_.erase(id);
      if (acked_lookup_.erase(id) > 0) acked_.erase(std::find(acked_.begin(), acked_.end(), id));
    }
    if (remove.size() < oldest->size()) return Status::Ok();
    read = kBatch;
  }
}

StatusOr<std::vector<OutboxRecord>> Outbox::TakeNext(size_t limit) {
  std::vector<OutboxRecord> out;
  // Everything held is in flight or delivered: nothing to read (the usual
  // case while online, checked every tick).
  if (storage_->Totals().rows <= in_flight_.size() + acked_.size()) return out;
  while (out.size() < limit) {
    const size_t want = std::max(limit - out.size(), kBatch);
    auto batch = storage_->ReadAfter(cursor_, want);
    if (!batch.ok()) return batch.status();
    for (auto& r : *batch) {
      if (out.size() >= limit) break;
      cursor_ = r.id;
      if (in_flight_.count(r.id) > 0 || acked_lookup_.count(r.id) > 0) continue;
      in_flight_.insert(r.id);
      out.push_back(std::move(r));
    }
    if (batch->size() < want) break;
  }
  return out;
}

void Outbox::Acknowledged(int64_t id) {
  in_flight_.erase(id);
  if (acked_lookup_.insert(id).second) acked_.push_back(id);
}

void Outbox::Failed(int64_t id) {
  if (in_flight_.erase(id) == 0) return;
  cursor_ = std::min(cursor_, id - 1);
}

void Outbox::ConnectionLost() {
  in_flight_.clear();
  cursor_ = 0;
}

Status Outbox::Commit() {
  if (acked_.empty()) return Status::Ok();
  Status s = storage_->Remove(acked_, 0);
  if (!s.ok()) return s;
  acked_.clear();
  acked_lookup_.clear();
  return Status::Ok();
}

}  // namespace derms::edge
