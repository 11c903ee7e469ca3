// What the cloud knows of each DER, and the contract's rules for it.
// Pure logic: the caller passes time and messages in. Not thread-safe: owned
// by the aggregator's processing thread.
//
// Online and offline: online on a birth or online status of the current
// session; offline on an offline status carrying the current bd_seq, or when
// no live telemetry has *arrived* for `offline_after_intervals` intervals; a
// late will from an older session changes nothing.
//
// Telemetry and its seq. The edge numbers telemetry with one counter for its
// whole life: +1 per sample, never reset by a new session or a restart (it
// persists a reserved block of 256 and continues above it, so a restart may
// skip up to 256). A new bd_seq therefore does not start seq anew. For each
// sample, against the DER's newest adopted sample N (seq S, arrived at A,
// in session B):
//  - no birth yet: nothing to check it against; not adopted (`unborn`), a
//    rebirth requested at most every `rebirth_min_interval_ms`;
//  - no newest yet (the DER's first sample since the aggregator started):
//    adopted, there being nothing to judge it against;
//  - seq <= S: `stale` (a redelivery or a sample from the edge's buffer);
//    not adopted, but a live one still counts as the DER being heard from;
//  - S < seq <= ceiling, where ceiling = S + `seq_pace` x (elapsed / interval
//    + 1) + `seq_slack` + `seq_session_slack` x (sessions since B, at most
//    8), elapsed = now - A: adopted as the newest state;
//  - seq > ceiling: a `seq_jump`, more samples than the DER's interval and
//    the elapsed time allow. Suspicious, not authoritative: not adopted and
//    not counted as hearing from the DER. Only a run of
//    `seq_jump_confirmations` such samples, each continuing the last within
//    the same ceiling rule and with no adopted sample in between (the old
//    sequence has stopped), is adopted, as a re-based counter would be.
// Freshness is judged by arrival: any live (not is_historical) sample that is
// not a seq_jump refreshes `last_heard_ms` and brings a DER that went offline
// by silence back online, whatever its seq; so one forged sample with a huge
// seq can neither freeze a DER's state nor silence it.
#ifndef DERMS_CLOUD_AGGREGATOR_REGISTRY_DER_REGISTRY_H_
#define DERMS_CLOUD_AGGREGATOR_REGISTRY_DER_REGISTRY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "derms/v1/derms.pb.h"

namespace derms::registry {

enum class OfflineCause : uint8_t { kNone, kStatus, kSilence };

// One per DER known, for a fleet of 100,000 and more: the fields are ordered
// so that the flags share one word.
struct DerState {
  std::string der_id;
  derms::v1::DerBirth birth;
  derms::v1::Telemetry last;    // newest adopted, by seq
  uint64_t bd_seq = 0;          // session of the last birth or status accepted
  int64_t last_adopted_ms = 0;  // when `last` arrived
  uint64_t last_bd_seq = 0;     // the session in force when `last` arrived
  int64_t last_heard_ms = 0;    // when live telemetry (not a seq jump) last arrived
  int64_t rebirth_requested_ms = 0;
  bool has_birth = false;
  bool online = false;
  bool has_telemetry = false;
  OfflineCause offline_cause = OfflineCause::kNone;

  // A CRITICAL alarm in the newest telemetry: a hardware fault.
  bool faulted() const;
  int64_t telemetry_interval_ms() const;
};

struct RegistryOptions {
  // Silent for this many telemetry intervals means offline.
  int64_t offline_after_intervals = 3;
  // Interval assumed for a DER whose birth does not say (seconds).
  int64_t default_telemetry_interval_s = 300;
  // Least time between two rebirth requests to the same DER.
  int64_t rebirth_min_interval_ms = 30000;
  // The seq ceiling (header comment): samples per interval elapsed, allowing
  // for jitter and a buffer flushed after a reconnect...
  int64_t seq_pace = 2;
  // ...plus this many at any time...
  int64_t seq_slack = 64;
  // ...plus this many per new session since the newest sample (an edge
  // restart skips at most its reserved block of 256).
  int64_t seq_session_slack = 512;
  // Seq jumps in a row, each continuing the last, that re-base the counter.
  int seq_jump_confirmations = 3;
};

enum class Change { kNone, kOnline, kOffline };

class DerRegistry {
 public:
  explicit DerRegistry(RegistryOptions options = {});

  struct Outcome {
    bool stale = false;             // from an older session, or an old seq: ignored
    Change change = Change::kNone;  // online state flipped
    bool request_rebirth = false;   // telemetry from a DER with no birth
    bool unborn = false;            // telemetry from a DER with no birth: not adopted
    bool seq_jump = false;          // seq beyond the ceiling: not adopted (header comment)
    bool seq_rebased = false;       // a confirmed run of seq jumps was adopted
    uint64_t seq_ceiling = 0;       // for a seq_jump: the highest seq that was plausible
    // The DER's state after the message: valid until the registry next changes.
    const DerState* der = nullptr;
  };
  // REQUIRES: each message passed its Validate* check.
  Outcome OnBirth(const derms::v1::DerBirth& birth, int64_t now_ms);
  Outcome OnStatus(const derms::v1::DerStatus& status, int64_t now_ms);
  Outcome OnTelemetry(const derms::v1::Telemetry& telemetry, int64_t now_ms);
  // Marks offline every online DER silent for too long; returns their ids.
  std::vector<std::string> ExpireSilent(int64_t now_ms);

  const DerState* Find(const std::string& der_id) const;
  // Online, born, not faulted, and heard from within the offline window.
  bool IsActive(const DerState& der, int64_t now_ms) const;
  // Calls f(const DerState&) for every DER, in der_id order.
  template <typename F>
  void ForEach(F f) const {
    for (const auto& [id, der] : ders_) f(der);
  }
  size_t size() const { return ders_.size(); }
  size_t online_count() const { return online_count_; }

 private:
  DerState& Get(const std::string& der_id);
  bool Silent(const DerState& der, int64_t now_ms) const;
  int64_t IntervalMs(const DerState& der) const;
  // The highest seq plausible `now_ms` for a DER whose newest seq was `seq`,
  // arriving at `heard_ms` in session `bd_seq` (header comment).
  uint64_t SeqCeiling(const DerState& der, uint64_t seq, int64_t heard_ms, uint64_t bd_seq,
                      int64_t now_ms) const;
  // Every change of DerState::online goes through here, keeping the count.
  void SetOnline(DerState& der, bool online);

  // A run of seq jumps being watched for one DER (header comment). Kept
  // apart from DerState: few DERs ever have one, and every DER would pay
  // for the fields.
  struct JumpWatch {
    int run = 0;
    uint64_t seq = 0;
    int64_t heard_ms = 0;
    uint64_t bd_seq = 0;
  };

  RegistryOptions options_;
  std::map<std::string, DerState> ders_;
  std::map<std::string, JumpWatch> jump_watches_;  // by der_id; only DERs with a run
  size_t online_count_ = 0;
};

}  // namespace derms::registry

#endif  // DERMS_CLOUD_AGGREGATOR_REGISTRY_DER_REGISTRY_H_
