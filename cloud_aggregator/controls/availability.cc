#include "cloud_aggregator/controls/availability.h"

#include <algorithm>

namespace derms::controls {

void AvailabilityHolds::Place(const std::string& der_id, Hold hold) {
  auto& holds = holds_[der_id];
  for (auto& h : holds) {
    if (h.holder == hold.holder) {
      h = std::move(hold);
      return;
    }
  }
  holds.push_back(std::move(hold));
}

void AvailabilityHolds::Release(const std::string& der_id, const std::string& holder) {
  auto it = holds_.find(der_id);
  if (it == holds_.end()) return;
  auto& holds = it->second;
  holds.erase(
      std::remove_if(holds.begin(), holds.end(), [&](const Hold& h) { return h.holder == holder; }),
      holds.end());
  if (holds.empty()) holds_.erase(it);
}

const Hold* AvailabilityHolds::Find(const std::string& der_id, int64_t now_ms,
                                    const std::string& except_holder) const {
  auto it = holds_.find(der_id);
  if (it == holds_.end()) return nullptr;
  const Hold* longest = nullptr;
  for (const auto& h : it->second) {
    if (!except_holder.empty() && h.holder == except_holder) continue;
    if (h.until_ms > now_ms && (longest == nullptr || h.until_ms > longest->until_ms)) {
      longest = &h;
    }
  }
  return longest;
}

const Hold* AvailabilityHolds::FindBy(const std::string& der_id, const std::string& holder,
                                      int64_t now_ms) const {
  auto it = holds_.find(der_id);
  if (it == holds_.end()) return nullptr;
  for (const auto& h : it->second) {
    if (h.holder == holder && h.until_ms > now_ms) return &h;
  }
  return nullptr;
}

void AvailabilityHolds::Expire(int64_t now_ms) {
  for (auto it = holds_.begin(); it != holds_.end();) {
    auto& holds = it->second;
    holds.erase(std::remove_if(holds.begin(), holds.end(),
                               [&](const Hold& h) { return h.until_ms <= now_ms; }),
                holds.end());
    it = holds.empty() ? holds_.erase(it) : std::next(it);
  }
}

size_t AvailabilityHolds::size() const {
  size_t n = 0;
  for (const auto& [der_id, holds] : holds_) n += holds.size();
  return n;
}

}  // namespace derms::controls
