// "This DER is not available to dispatch until T, because ...": one concept
// for every reason a DER is taken out of dispatch for a while (an owner's
// charging schedule, a utility's dispatch window; maintenance tasks and
// curtailment next). Holders
// place and release holds; dispatch leaves held DERs alone.
// Pure logic; not thread-safe (the processing thread owns it).
#ifndef DERMS_CLOUD_AGGREGATOR_CONTROLS_AVAILABILITY_H_
#define DERMS_CLOUD_AGGREGATOR_CONTROLS_AVAILABILITY_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace derms::controls {

struct Hold {
  std::string holder;  // who placed it: "charging", "maintenance", ...
  int64_t until_ms = 0;
  std::string reason;  // for people: "following charging schedule 'ev-1-night'"
};

class AvailabilityHolds {
 public:
  // Places (or replaces) `holder`'s hold on `der_id`. Several holders may
  // hold one DER; it is available again when the last hold ends.
  void Place(const std::string& der_id, Hold hold);
  // Ends `holder`'s hold on `der_id` early (nothing when it has none).
  void Release(const std::string& der_id, const std::string& holder);
  // The hold that lasts longest on `der_id` at `now_ms`, or null. With
  // `except_holder`, that holder's own hold is not counted (a holder asking
  // whether anyone else holds the DER).
  const Hold* Find(const std::string& der_id, int64_t now_ms,
                   const std::string& except_holder = {}) const;
  bool Held(const std::string& der_id, int64_t now_ms) const {
    return Find(der_id, now_ms) != nullptr;
  }
  // `holder`'s hold on `der_id` at `now_ms`, or null.
  const Hold* FindBy(const std::string& der_id, const std::string& holder, int64_t now_ms) const;
  // Forgets holds that have ended.
  void Expire(int64_t now_ms);
  size_t size() const;

 private:
  std::map<std::string, std::vector<Hold>> holds_;  // by der_id
};

}  // namespace derms::controls

#endif  // DERMS_CLOUD_AGGREGATOR_CONTROLS_AVAILABILITY_H_
