// The telemetry outbox: samples the agent keeps until the broker has
// acknowledged them. Pure policy over an OutboxStorage (storage.h):
//  - every sample is added before it is published (write-ahead), so one in
//    flight when the connection or the process dies is sent again;
//  - a record is removed only once acknowledged (QoS 1 PUBACK);
//  - bounded by rows, payload bytes and age: beyond a cap the oldest records
//    go first, and each one dropped is counted (with the records, so the
//    count survives a restart);
//  - records are handed out to publish oldest first; one in flight is not
//    handed out again unless its publish failed or the connection was lost.
// Not thread-safe: one owner, the agent's loop.
#ifndef DERMS_EDGE_AGENT_OUTBOX_OUTBOX_H_
#define DERMS_EDGE_AGENT_OUTBOX_OUTBOX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "edge_agent/outbox/storage.h"

namespace derms::edge {

struct OutboxLimits {
  // Records kept at most; beyond it the oldest are dropped. 100,000 is
  // 27 hours of 1-second telemetry.
  int64_t max_rows = 100000;
  // Payload bytes kept at most (about 60 bytes a sample).
  int64_t max_bytes = 64LL << 20;
  // A record whose timestamp_ms is older than this is dropped: the cloud
  // has no use for week-old samples.
  int64_t max_age_s = 7 * 86400;
};

class Outbox {
 public:
  Outbox(std::unique_ptr<OutboxStorage> storage, OutboxLimits limits);

  // Keeps a sample, then drops what the caps exclude (Enforce). Returns its id.
  [[nodiscard]] StatusOr<int64_t> Add(uint64_t seq, int64_t timestamp_ms,
                                      const std::string& payload, int64_t now_ms);
  // Drops, oldest first, the records beyond max_rows or max_bytes and those
  // older than max_age_s at `now_ms`; acknowledged ones awaiting Commit go
  // with them, uncounted.
  [[nodiscard]] Status Enforce(int64_t now_ms);

  // Up to `limit` records to publish now, oldest first, marked in flight:
  // none in flight already nor acknowledged.
  [[nodiscard]] StatusOr<std::vector<OutboxRecord>> TakeNext(size_t limit);
  // The caller published record `id` itself (a live sample): in flight.
  void MarkInFlight(int64_t id) { in_flight_.insert(id); }
  // The broker acknowledged `id`: removed at the next Commit.
  void Acknowledged(int64_t id);
  // The publish of `id` failed or timed out: it will be handed out again.
  void Failed(int64_t id);
  // The connection is gone: everything in flight will be handed out again.
  void ConnectionLost();
  // Removes the acknowledged records in one storage step. On error they stay
  // queued and the next Commit retries.
  [[nodiscard]] Status Commit();

  size_t in_flight() const { return in_flight_.size(); }
  size_t acknowledged_pending() const { return acked_.size(); }
  // Records held (acknowledged ones not yet committed included), bytes, and
  // records dropped by the caps over the storage's life.
  OutboxTotals totals() const { return storage_->Totals(); }
  const OutboxLimits& limits() const { return limits_; }

 private:
  std::unique_ptr<OutboxStorage> storage_;
  OutboxLimits limits_;
  int64_t cursor_ = 0;  // every record with id <= cursor_ was handed out (or skipped)
  std::unordered_set<int64_t> in_flight_;
  std::vector<int64_t> acked_;                // awaiting Commit
  std::unordered_set<int64_t> acked_lookup_;  // the same ids, for lookups
};

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_OUTBOX_OUTBOX_H_
