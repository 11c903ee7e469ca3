#include "cloud_aggregator/history/rollup.h"

#include <algorithm>
#include <cmath>

namespace derms::history {

std::string ResolutionName(int64_t resolution_s) {
  switch (resolution_s) {
    case k5Min:
      return "5m";
    case kHour:
      return "1h";
    case kDay:
      return "1d";
    default:
      return "";
  }
}

int64_t ParseResolution(const std::string& name) {
  if (name == "5m" || name == "300") return k5Min;
  if (name == "1h" || name == "3600") return kHour;
  if (name == "1d" || name == "86400") return kDay;
  return 0;
}

Bucket Rollup(const std::vector<Sample>& samples, int64_t start_ms, int64_t resolution_s,
              double interval_s) {
  Bucket b;
  b.start_ms = start_ms;
  b.samples = static_cast<uint32_t>(samples.size());
  const double n = static_cast<double>(samples.size());
  const double bucket_s = static_cast<double>(resolution_s);
  // Each sample stands for its interval, but n of them never for more than
  // the bucket.
  const double w = std::min(interval_s, bucket_s / n);
  b.availability = std::min(1.0, n * w / bucket_s);
  b.min_kw = samples.front().active_power_kw;
  b.max_kw = b.min_kw;
  double sum_kw = 0, exported = 0, imported = 0, capacity = 0, soc_sum = 0;
  int soc_n = 0;
  for (const Sample& s : samples) {
    const double p = s.active_power_kw;
    b.min_kw = std::min(b.min_kw, p);
    b.max_kw = std::max(b.max_kw, p);
    sum_kw += p;
    if (p > 0) exported += p;
    if (p < 0) imported -= p;
    capacity += s.available_discharge_kw;
    if (s.soc_pct) {
      soc_sum += *s.soc_pct;
      ++soc_n;
    }
  }
  b.mean_kw = sum_kw / n;
  b.export_kwh = exported * w / 3600.0;
  b.import_kwh = imported * w / 3600.0;
  b.capacity_kw = capacity * w / bucket_s;
  if (soc_n > 0) b.soc_pct = soc_sum / soc_n;
  return b;
}

Bucket Combine(const std::vector<Bucket>& fine, int64_t start_ms, int64_t resolution_s,
               int64_t fine_resolution_s) {
  Bucket b;
  b.start_ms = start_ms;
  // Absent fine buckets were unavailable and offered no capacity.
  const double slots = static_cast<double>(resolution_s) / static_cast<double>(fine_resolution_s);
  b.min_kw = fine.front().min_kw;
  b.max_kw = fine.front().max_kw;
  double weighted_kw = 0, availability = 0, capacity = 0, soc_weighted = 0;
  double soc_weight = 0;
  for (const Bucket& f : fine) {
    b.samples += f.samples;
    b.min_kw = std::min(b.min_kw, f.min_kw);
    b.max_kw = std::max(b.max_kw, f.max_kw);
    weighted_kw += f.mean_kw * f.samples;
    b.export_kwh += f.export_kwh;
    b.import_kwh += f.import_kwh;
    availability += f.availability;
    capacity += f.capacity_kw;
    if (f.soc_pct) {
      soc_weighted += *f.soc_pct * f.samples;
      soc_weight += f.samples;
    }
  }
  b.mean_kw = b.samples > 0 ? weighted_kw / b.samples : 0;
  b.availability = availability / slots;
  b.capacity_kw = capacity / slots;
  if (soc_weight > 0) b.soc_pct = soc_weighted / soc_weight;
  return b;
}

Bucket SumMembers(const std::vector<Bucket>& members, int64_t start_ms, size_t members_total) {
  Bucket b;
  b.start_ms = start_ms;
  double availability = 0, soc_sum = 0;
  int soc_n = 0;
  for (const Bucket& m : members) {
    b.samples += m.samples;
    b.min_kw += m.min_kw;
    b.max_kw += m.max_kw;
    b.mean_kw += m.mean_kw;
    b.export_kwh += m.export_kwh;
    b.import_kwh += m.import_kwh;
    b.capacity_kw += m.capacity_kw;
    availability += m.availability;
    if (m.soc_pct) {
      soc_sum += *m.soc_pct;
      ++soc_n;
    }
  }
  b.availability = availability / static_cast<double>(members_total);
  if (soc_n > 0) b.soc_pct = soc_sum / soc_n;
  return b;
}

}  // namespace derms::history
