// What the cloud knows of each DER, and the contract's rules for it:
// online on a birth or online status of the current session, offline on an
// offline status carrying the current bd_seq or when telemetry is silent for
// `offline_after_intervals` intervals; a late will from an older session
// changes nothing. Pure logic: the caller passes time and messages in.
// Not thread-safe: owned by the aggregator's processing thread.
#ifndef DERMS_CLOUD_AGGREGATOR_REGISTRY_DER_REGISTRY_H_
#define DERMS_CLOUD_AGGREGATOR_REGISTRY_DER_REGISTRY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "derms/v1/derms.pb.h"

namespace derms::registry {

enum class OfflineCause { kNone, kStatus, kSilence };

struct DerState {
  std::string der_id;
  bool has_birth = false;
  derms::v1::DerBirth birth;
  bool online = false;
  OfflineCause offline_cause = OfflineCause::kNone;
  uint64_t bd_seq = 0;  // session of the last birth or status accepted
  bool has_telemetry = false;
  derms::v1::Telemetry last;  // newest by seq
  int64_t last_heard_ms = 0;  // when telemetry last arrived
  int64_t rebirth_requested_ms = 0;

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
};

enum class Change { kNone, kOnline, kOffline };

class DerRegistry {
 public:
  explicit DerRegistry(RegistryOptions options = {});

  struct Outcome {
    bool stale = false;             // from an older session, or an old seq: ignored
    Change change = Change::kNone;  // online state flipped
    bool request_rebirth = false;   // telemetry from a DER with no birth
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
  // Every change of DerState::online goes through here, keeping the count.
  void SetOnline(DerState& der, bool online);

  RegistryOptions options_;
  std::map<std::string, DerState> ders_;
  size_t online_count_ = 0;
};

}  // namespace derms::registry

#endif  // DERMS_CLOUD_AGGREGATOR_REGISTRY_DER_REGISTRY_H_
