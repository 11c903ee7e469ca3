#include "cloud_aggregator/history/slots.h"

#include <algorithm>

namespace derms::history {

std::vector<Slot> FindSlots(const std::vector<Bucket>& buckets, int64_t resolution_s,
                            double min_kw) {
  std::vector<Slot> slots;
  const int64_t step_ms = resolution_s * 1000;
  double sum = 0;
  for (const Bucket& b : buckets) {
    if (!(b.capacity_kw >= min_kw)) continue;
    if (slots.empty() || slots.back().end_ms != b.start_ms) {
      if (!slots.empty()) slots.back().mean_capacity_kw = sum / slots.back().buckets;
      slots.push_back(Slot{b.start_ms, b.start_ms, 0, b.capacity_kw, 0});
      sum = 0;
    }
    Slot& s = slots.back();
    s.end_ms = b.start_ms + step_ms;
    ++s.buckets;
    s.min_capacity_kw = std::min(s.min_capacity_kw, b.capacity_kw);
    sum += b.capacity_kw;
  }
  if (!slots.empty()) slots.back().mean_capacity_kw = sum / slots.back().buckets;
  return slots;
}

}  // namespace derms::history
