#include <catch2/catch.hpp>
#include <random>

#include "cloud_aggregator/history/rollup.h"
#include "cloud_aggregator/history/slots.h"

using derms::history::Bucket;
using derms::history::Sample;
namespace history = derms::history;

namespace {

constexpr int64_t kT0 = 1767225600000;  // 2026-01-01T00:00:00Z

Sample At(int64_t offset_s, double kw, double capacity_kw = 0) {
  Sample s;
  s.timestamp_ms = kT0 + offset_s * 1000;
  s.active_power_kw = kw;
  s.available_discharge_kw = capacity_kw;
  return s;
}

}  // namespace

TEST_CASE("a 5-minute bucket of a DER reporting every minute", "[rollup]") {
  std::vector<Sample> samples = {At(0, 2, 10), At(60, 4, 10), At(120, -2, 10), At(180, 0, 10),
                                 At(240, 6, 10)};
  Bucket b = history::Rollup(samples, kT0, history::k5Min, 60);
  CHECK(b.samples == 5);
  CHECK(b.availability == Approx(1.0));
  CHECK(b.min_kw == -2);
  CHECK(b.max_kw == 6);
  CHECK(b.mean_kw == Approx(2.0));
  CHECK(b.export_kwh == Approx((2 + 4 + 6) * 60 / 3600.0));
  CHECK(b.import_kwh == Approx(2 * 60 / 3600.0));
  CHECK(b.capacity_kw == Approx(10.0));
  CHECK_FALSE(b.soc_pct.has_value());
}

TEST_CASE("missing samples lower availability and capacity, not the mean", "[rollup]") {
  std::vector<Sample> samples = {At(0, 5, 8), At(60, 5, 8)};
  Bucket b = history::Rollup(samples, kT0, history::k5Min, 60);
  CHECK(b.availability == Approx(0.4));
  CHECK(b.mean_kw == Approx(5));
  CHECK(b.capacity_kw == Approx(8 * 0.4));
  CHECK(b.export_kwh == Approx(5 * 120 / 3600.0));
}

TEST_CASE("a DER sending faster than it said never counts more than the bucket", "[rollup]") {
  std::vector<Sample> samples;
  for (int i = 0; i < 300; ++i) samples.push_back(At(i, 3.6, 1));
  Bucket b = history::Rollup(samples, kT0, history::k5Min, 60);
  CHECK(b.availability == Approx(1.0));
  CHECK(b.export_kwh == Approx(3.6 * 300 / 3600.0));
  CHECK(b.capacity_kw == Approx(1.0));
}

TEST_CASE("state of charge is the mean of the samples that carry one", "[rollup]") {
  std::vector<Sample> samples = {At(0, 1), At(60, 1), At(120, 1)};
  samples[0].soc_pct = 40;
  samples[2].soc_pct = 50;
  Bucket b = history::Rollup(samples, kT0, history::k5Min, 60);
  REQUIRE(b.soc_pct.has_value());
  CHECK(*b.soc_pct == Approx(45));
}

TEST_CASE("an hour combined from 5-minute buckets equals the hour from raw samples", "[rollup]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> kw(-20, 20), cap(0, 30), soc(0, 100);
  std::bernoulli_distribution present(0.8);
  for (int trial = 0; trial < 200; ++trial) {
    const double interval_s = trial % 3 == 0 ? 60 : 10;
    std::vector<Sample> all;
    std::vector<Bucket> fine;
    for (int slot = 0; slot < 12; ++slot) {
      std::vector<Sample> in_slot;
      for (int t = 0; t < 300; t += static_cast<int>(interval_s)) {
        if (!present(rng)) continue;
        Sample s = At(slot * 300 + t, kw(rng), cap(rng));
        if (trial % 2 == 0) s.soc_pct = soc(rng);
        in_slot.push_back(s);
      }
      if (in_slot.empty()) continue;
      fine.push_back(history::Rollup(in_slot, kT0 + slot * 300000, history::k5Min, interval_s));
      all.insert(all.end(), in_slot.begin(), in_slot.end());
    }
    if (fine.empty()) continue;
    Bucket hour = history::Combine(fine, kT0, history::kHour, history::k5Min);
    // Straight from the raw samples, by the definitions in rollup.h.
    double sum = 0, exported = 0, imported = 0, mn = all[0].active_power_kw, mx = mn;
    double soc_sum = 0;
    int soc_n = 0;
    for (const auto& s : all) {
      sum += s.active_power_kw;
      exported += std::max(0.0, s.active_power_kw) * interval_s / 3600;
      imported += std::max(0.0, -s.active_power_kw) * interval_s / 3600;
      mn = std::min(mn, s.active_power_kw);
      mx = std::max(mx, s.active_power_kw);
      if (s.soc_pct) {
        soc_sum += *s.soc_pct;
        ++soc_n;
      }
    }
    double capacity = 0;
    for (const auto& s : all) capacity += s.available_discharge_kw * interval_s / 3600;
    CHECK(hour.samples == all.size());
    CHECK(hour.min_kw == mn);
    CHECK(hour.max_kw == mx);
    CHECK(hour.mean_kw == Approx(sum / all.size()));
    CHECK(hour.export_kwh == Approx(exported));
    CHECK(hour.import_kwh == Approx(imported));
    CHECK(hour.availability == Approx(all.size() * interval_s / 3600));
    CHECK(hour.capacity_kw == Approx(capacity));
    if (soc_n > 0) {
      REQUIRE(hour.soc_pct.has_value());
      CHECK(*hour.soc_pct == Approx(soc_sum / soc_n));
    }
  }
}

TEST_CASE("a virtual DER's bucket sums its members and counts absent ones unavailable",
          "[rollup]") {
  Bucket a, b;
  a.samples = 5, a.availability = 1, a.min_kw = 1, a.max_kw = 3, a.mean_kw = 2;
  a.export_kwh = 0.2, a.capacity_kw = 10, a.soc_pct = 40;
  b.samples = 2, b.availability = 0.4, b.min_kw = -1, b.max_kw = 0, b.mean_kw = -0.5;
  b.import_kwh = 0.01, b.capacity_kw = 4;
  Bucket v = history::SumMembers({a, b}, kT0, 4);
  CHECK(v.samples == 7);
  CHECK(v.availability == Approx(1.4 / 4));
  CHECK(v.mean_kw == Approx(1.5));
  CHECK(v.min_kw == Approx(0));
  CHECK(v.max_kw == Approx(3));
  CHECK(v.export_kwh == Approx(0.2));
  CHECK(v.import_kwh == Approx(0.01));
  CHECK(v.capacity_kw == Approx(14));
  REQUIRE(v.soc_pct.has_value());
  CHECK(*v.soc_pct == Approx(40));
}

TEST_CASE("slots merge consecutive buckets at or above the threshold", "[rollup][slots]") {
  std::vector<Bucket> buckets;
  const double caps[] = {50, 120, 100, 130, 99.9, 150, 150};
  for (int i = 0; i < 7; ++i) {
    Bucket b;
    b.start_ms = kT0 + i * 300000;
    b.capacity_kw = caps[i];
    if (i != 6) buckets.push_back(b);
  }
  // Bucket 6 is missing from the data; then one after the gap.
  Bucket late;
  late.start_ms = kT0 + 7 * 300000;
  late.capacity_kw = 200;
  buckets.push_back(late);
  auto slots = history::FindSlots(buckets, history::k5Min, 100);
  REQUIRE(slots.size() == 3);
  CHECK(slots[0].start_ms == kT0 + 300000);
  CHECK(slots[0].end_ms == kT0 + 4 * 300000);
  CHECK(slots[0].buckets == 3);
  CHECK(slots[0].min_capacity_kw == 100);
  CHECK(slots[0].mean_capacity_kw == Approx(350.0 / 3));
  CHECK(slots[1].start_ms == kT0 + 5 * 300000);
  CHECK(slots[1].buckets == 1);
  CHECK(slots[2].start_ms == kT0 + 7 * 300000);
  CHECK(history::FindSlots(buckets, history::k5Min, 1000).empty());
}

TEST_CASE("bucket starts align to UTC boundaries, also before 1970", "[rollup]") {
  CHECK(history::BucketStart(kT0 + 299999, history::k5Min) == kT0);
  CHECK(history::BucketStart(kT0 + 300000, history::k5Min) == kT0 + 300000);
  CHECK(history::BucketStart(kT0 + 3599999, history::kHour) == kT0);
  CHECK(history::BucketStart(-1, history::k5Min) == -300000);
  CHECK(history::ParseResolution("1h") == 3600);
  CHECK(history::ParseResolution("2h") == 0);
  CHECK(history::ResolutionName(86400) == "1d");
}
