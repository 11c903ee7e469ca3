// Capacity slots: the stretches of time when a series' available capacity
// (Bucket::capacity_kw) stayed at or above a threshold. Pure logic.
#ifndef DERMS_CLOUD_AGGREGATOR_HISTORY_SLOTS_H_
#define DERMS_CLOUD_AGGREGATOR_HISTORY_SLOTS_H_

#include <cstdint>
#include <vector>

#include "cloud_aggregator/history/rollup.h"

namespace derms::history {

struct Slot {
  int64_t start_ms = 0;
  int64_t end_ms = 0;  // exclusive: the end of its last bucket
  uint32_t buckets = 0;
  double min_capacity_kw = 0;
  double mean_capacity_kw = 0;
};

// Consecutive buckets of `resolution_s` (a missing bucket breaks a slot) whose
// capacity_kw >= min_kw, merged. REQUIRES: buckets sorted by start_ms.
std::vector<Slot> FindSlots(const std::vector<Bucket>& buckets, int64_t resolution_s,
                            double min_kw);

}  // namespace derms::history

#endif  // DERMS_CLOUD_AGGREGATOR_HISTORY_SLOTS_H_
