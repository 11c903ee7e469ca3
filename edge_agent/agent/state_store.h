// Keeps an agent's session counters across restarts in a small text file:
// bd_seq (incremented on every connect) and a reserved block of telemetry
// sequence numbers, so seq never repeats even after a crash.
#ifndef DERMS_EDGE_AGENT_AGENT_STATE_STORE_H_
#define DERMS_EDGE_AGENT_AGENT_STATE_STORE_H_

#include <cstdint>
#include <string>

#include "common/status.h"

namespace derms::edge {

// Not thread-safe: one per agent, used from the agent's loop.
class StateStore {
 public:
  // Reads `dir`/`der_id`.state, creating `dir` if needed. A missing file
  // starts from zero; an unreadable one is an error naming the file.
  static StatusOr<StateStore> Open(const std::string& dir, const std::string& der_id);

  // Increments and persists bd_seq; returns the new value.
  StatusOr<uint64_t> NextBdSeq();
  // The next telemetry seq (first is 1). Persists a new reserved block when
  // the current one is used up, so a restart continues above every seq used.
  StatusOr<uint64_t> NextSeq();
  uint64_t bd_seq() const { return bd_seq_; }

 private:
  StateStore(std::string path, uint64_t bd_seq, uint64_t seq_reserved);
  Status Save() const;

  static constexpr uint64_t kSeqBlock = 256;
  std::string path_;
  uint64_t bd_seq_;
  uint64_t next_seq_;      // next seq to hand out
  uint64_t seq_reserved_;  // persisted: every seq below this may have been used
};

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_AGENT_STATE_STORE_H_
