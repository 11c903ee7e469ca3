#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cloud_aggregator/history/chunk_codec.h"
#include "cloud_aggregator/history/rollup.h"

using derms::history::Bucket;
using derms::history::ChunkStart;
using derms::history::DecodeChunk;
using derms::history::EncodeChunk;
using derms::history::kChunkBuckets;

namespace {

constexpr int64_t k2025Ms = 1735689600000;  // 2025-01-01T00:00:00Z

// Deterministic on every standard library: mt19937's sequence is fixed by the
// standard, its distributions are not.
class Rng {
 public:
  explicit Rng(uint32_t seed) : gen_(seed) {}
  double Uniform() { return (static_cast<double>(gen_()) + 0.5) / 4294967296.0; }
  double Normal() {
    const double u1 = Uniform(), u2 = Uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }
  bool Chance(double p) { return Uniform() < p; }
  uint32_t Below(uint32_t n) { return gen_() % n; }
  uint32_t Next() { return gen_(); }

 private:
  std::mt19937 gen_;
};

// The format's checksum, written out independently of the codec: lets the
// tests damage a blob's body behind a valid checksum.
uint32_t Crc32(const std::string& data) {
  uint32_t c = 0xFFFFFFFFu;
  for (char ch : data) {
    c ^= static_cast<uint8_t>(ch);
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

void Reseal(std::string* blob) {
  blob->resize(blob->size() - 4);
  const uint32_t crc = Crc32(*blob);
  for (int i = 0; i < 4; ++i) blob->push_back(static_cast<char>(crc >> (8 * i)));
}

// Checks that `got` is what `want` stores: integers exactly, the rest within
// half a quantum (and the rounding error of the double itself).
void RequireStored(const std::vector<Bucket>& want, const std::vector<Bucket>& got) {
  REQUIRE(got.size() == want.size());
  auto near = [](double expected, double actual, double quantum) {
    return std::fabs(expected - actual) <= 0.5 * quantum * (1 + 1e-9) + 4e-16 * std::fabs(expected);
  };
  for (size_t i = 0; i < want.size(); ++i) {
    const Bucket& w = want[i];
    const Bucket& g = got[i];
    INFO("bucket " << i << " start_ms " << w.start_ms);
    REQUIRE(g.start_ms == w.start_ms);
    REQUIRE(g.samples == w.samples);
    REQUIRE(near(w.availability, g.availability, derms::history::kAvailabilityQuantum));
    REQUIRE(near(w.min_kw, g.min_kw, derms::history::kPowerQuantumKw));
    REQUIRE(near(w.max_kw, g.max_kw, derms::history::kPowerQuantumKw));
    REQUIRE(near(w.mean_kw, g.mean_kw, derms::history::kPowerQuantumKw));
    REQUIRE(near(w.export_kwh, g.export_kwh, derms::history::kEnergyQuantumKwh));
    REQUIRE(near(w.import_kwh, g.import_kwh, derms::history::kEnergyQuantumKwh));
    REQUIRE(near(w.capacity_kw, g.capacity_kw, derms::history::kPowerQuantumKw));
    REQUIRE(g.soc_pct.has_value() == w.soc_pct.has_value());
    if (w.soc_pct) REQUIRE(near(*w.soc_pct, *g.soc_pct, derms::history::kSocQuantumPct));
  }
}

// A value of one of several shapes: the edges a codec gets wrong.
double RandomValue(Rng* rng, double quantum) {
  switch (rng->Below(8)) {
    case 0:
      return 0;
    case 1:
      return -0.0;
    case 2:  // near the largest magnitude a chunk holds (2^53 quanta)
      return (rng->Chance(0.5) ? -1 : 1) * quantum * 9.0e15 * rng->Uniform();
    case 3:  // exactly on a quantum's half
      return (static_cast<double>(rng->Below(2000)) - 1000 + 0.5) * quantum;
    case 4:
      return quantum * (rng->Uniform() - 0.5) * 3;
    case 5:
      return std::ldexp(rng->Normal(), static_cast<int>(rng->Below(40)) - 20);
    default:
      return rng->Normal() * 50;
  }
}

// A chunk of random presence and values, sometimes realistic, sometimes not.
std::vector<Bucket> RandomChunk(Rng* rng, int64_t resolution_s) {
  const int64_t step_ms = resolution_s * 1000;
  const int64_t chunk_ms = step_ms * kChunkBuckets;
  const int64_t chunk_start = (static_cast<int64_t>(rng->Below(40000)) - 5000) * chunk_ms;
  std::vector<int> slots;
  switch (rng->Below(5)) {
    case 0:  // all of them
      for (int s = 0; s < kChunkBuckets; ++s) slots.push_back(s);
      break;
    case 1:  // one
      slots.push_back(static_cast<int>(rng->Below(kChunkBuckets)));
      break;
    case 2: {  // a consecutive run
      const int first = static_cast<int>(rng->Below(kChunkBuckets));
      const int n = 1 + static_cast<int>(rng->Below(kChunkBuckets - first));
      for (int s = first; s < first + n; ++s) slots.push_back(s);
      break;
    }
    default: {  // random, of random density
      const double p = rng->Uniform();
      for (int s = 0; s < kChunkBuckets; ++s) {
        if (rng->Chance(p)) slots.push_back(s);
      }
      if (slots.empty()) slots.push_back(kChunkBuckets - 1);
    }
  }
  const bool smooth = rng->Chance(0.5);
  const double soc_share = rng->Below(3) / 2.0;  // none, half or all carry one
  std::vector<Bucket> out;
  double level = rng->Normal() * 100;
  for (int s : slots) {
    Bucket b;
    b.start_ms = chunk_start + s * step_ms;
    if (smooth) {
      level += rng->Normal();
      b.samples = rng->Chance(0.9) ? 60 : rng->Below(61);
      b.availability = b.samples / 60.0;
      b.mean_kw = level;
      b.min_kw = level - std::fabs(rng->Normal());
      b.max_kw = level + std::fabs(rng->Normal());
      b.export_kwh = std::max(level, 0.0) * b.availability * resolution_s / 3600;
      b.import_kwh = std::max(-level, 0.0) * b.availability * resolution_s / 3600;
      b.capacity_kw = 5 * b.availability;
      if (rng->Chance(soc_share)) b.soc_pct = 50 + level / 10;
    } else {
      b.samples = rng->Chance(0.5) ? rng->Next() : rng->Below(100);
      b.availability = RandomValue(rng, derms::history::kAvailabilityQuantum);
      b.min_kw = RandomValue(rng, derms::history::kPowerQuantumKw);
      b.max_kw = RandomValue(rng, derms::history::kPowerQuantumKw);
      b.mean_kw = RandomValue(rng, derms::history::kPowerQuantumKw);
      b.export_kwh = RandomValue(rng, derms::history::kEnergyQuantumKwh);
      b.import_kwh = RandomValue(rng, derms::history::kEnergyQuantumKwh);
      b.capacity_kw = RandomValue(rng, derms::history::kPowerQuantumKw);
      if (rng->Chance(soc_share)) b.soc_pct = RandomValue(rng, derms::history::kSocQuantumPct);
    }
    out.push_back(b);
  }
  return out;
}

int64_t RandomResolution(Rng* rng) {
  const int64_t resolutions[] = {derms::history::k5Min, derms::history::kHour,
                                 derms::history::kDay};
  return resolutions[rng->Below(3)];
}

std::vector<Bucket> SimpleChunk(size_t n) {
  std::vector<Bucket> out;
  for (size_t i = 0; i < n; ++i) {
    Bucket b;
    b.start_ms = k2025Ms + static_cast<int64_t>(i) * 300000;
    b.samples = 30;
    b.availability = 1;
    b.mean_kw = 3.2 + 0.01 * static_cast<double>(i);
    b.min_kw = b.mean_kw - 0.4;
    b.max_kw = b.mean_kw + 0.3;
    b.export_kwh = b.mean_kw / 12;
    b.capacity_kw = 5;
    if (i % 3 != 0) b.soc_pct = 40 + 0.1 * static_cast<double>(i);
    out.push_back(b);
  }
  return out;
}

// ---- A synthetic fleet: raw samples rolled up by the definitions in rollup.h

enum class DerType { kPv, kBattery, kEv, kLoad, kWind };
constexpr DerType kDerTypes[] = {DerType::kPv, DerType::kBattery, DerType::kEv, DerType::kLoad,
                                 DerType::kWind};

const char* DerTypeName(DerType type) {
  switch (type) {
    case DerType::kPv:
      return "pv";
    case DerType::kBattery:
      return "battery";
    case DerType::kEv:
      return "ev";
    case DerType::kLoad:
      return "load";
    case DerType::kWind:
      return "wind";
  }
  return "";
}

struct RawSample {
  double power_kw = 0;
  std::optional<double> soc_pct;
  double available_kw = 0;
};

Bucket RollUp(const std::vector<RawSample>& samples, int64_t start_ms, double bucket_s,
              double interval_s) {
  Bucket b;
  b.start_ms = start_ms;
  b.samples = static_cast<uint32_t>(samples.size());
  const double n = static_cast<double>(samples.size());
  const double w = std::min(interval_s, bucket_s / n);
  b.availability = n * w / bucket_s;
  b.min_kw = samples.front().power_kw;
  b.max_kw = b.min_kw;
  double sum = 0, soc_sum = 0;
  int soc_n = 0;
  for (const RawSample& s : samples) {
    b.min_kw = std::min(b.min_kw, s.power_kw);
    b.max_kw = std::max(b.max_kw, s.power_kw);
    sum += s.power_kw;
    b.export_kwh += std::max(s.power_kw, 0.0) * w / 3600;
    b.import_kwh += std::max(-s.power_kw, 0.0) * w / 3600;
    b.capacity_kw += s.available_kw * w / bucket_s;
    if (s.soc_pct) {
      soc_sum += *s.soc_pct;
      ++soc_n;
    }
  }
  b.mean_kw = sum / n;
  if (soc_n > 0) b.soc_pct = soc_sum / soc_n;
  return b;
}

// `days` of 5-minute buckets of one DER, from raw telemetry every 5 to 60 s
// (metered to 1 W) with lost messages, clock drift and outages of up to three
// hours. Positive power is export.
std::vector<Bucket> FleetSeries(DerType type, uint32_t seed, int days) {
  Rng rng(seed);
  const double bucket_s = 300;
  const double intervals_s[] = {5, 10, 15, 30, 60};
  const double interval_s = intervals_s[rng.Below(5)];
  const int per_bucket = static_cast<int>(bucket_s / interval_s);
  double size_kw = 0;
  switch (type) {
    case DerType::kPv:  // rooftop, a tenth commercial
      size_kw = (3 + 9 * rng.Uniform()) * (rng.Chance(0.1) ? 20 : 1);
      break;
    case DerType::kBattery:
      size_kw = rng.Chance(0.5) ? 5 : 10;
      break;
    case DerType::kEv:
      size_kw = rng.Chance(0.6) ? 7.2 : 11;
      break;
    case DerType::kLoad:  // a water heater or a building's HVAC
      size_kw = rng.Chance(0.7) ? 2 + 4 * rng.Uniform() : 20 + 60 * rng.Uniform();
      break;
    case DerType::kWind:
      size_kw = rng.Chance(0.7) ? 5 + 15 * rng.Uniform() : 50 + 50 * rng.Uniform();
      break;
  }
  const double battery_kwh = size_kw * 2.7;
  double soc = 30 + 40 * rng.Uniform();
  const bool ev_reports_soc = rng.Chance(0.5);
  double cloud = 1, cloud_target = 1;
  double wind = 4 + 4 * rng.Uniform(), wind_mean = wind;
  double ev_need_kwh = 0, ev_soc = 0;
  bool ev_charging = false;
  const double phase = rng.Uniform();
  int offline_buckets = 0;
  std::vector<Bucket> out;
  for (int day = 0; day < days; ++day) {
    const double cloudiness = rng.Uniform();  // 0 clear .. 1 overcast
    const double sunrise_h = 6 + rng.Normal() * 0.1, sunset_h = 18.5 + rng.Normal() * 0.1;
    const double ev_arrival_h = 17 + 3 * rng.Uniform();
    const bool ev_today = rng.Chance(0.6);
    wind_mean = std::clamp(wind_mean + rng.Normal() * 2, 2.0, 11.0);
    for (int k = 0; k < kChunkBuckets; ++k) {
      if (offline_buckets == 0 && rng.Chance(0.0015)) offline_buckets = 1 + rng.Below(36);
      int n = per_bucket;
      if (rng.Chance(0.05)) {
        n -= 1 + static_cast<int>(rng.Below(2));  // lost messages
      } else if (rng.Chance(0.01)) {
        n += 1;  // clock drift
      }
      std::vector<RawSample> samples;
      for (int i = 0; i < n; ++i) {
        const double t_h = (k * bucket_s + i * bucket_s / n) / 3600;
        RawSample x;
        switch (type) {
          case DerType::kPv: {
            const double sun =
                t_h > sunrise_h && t_h < sunset_h
                    ? std::pow(std::sin(M_PI * (t_h - sunrise_h) / (sunset_h - sunrise_h)), 1.3)
                    : 0;
            if (rng.Chance(0.002 * interval_s)) {
              cloud_target = rng.Chance(cloudiness) ? 0.2 + 0.5 * rng.Uniform() : 1;
            }
            cloud += (cloud_target - cloud) * std::min(1.0, interval_s / 60) +
                     rng.Normal() * 0.01 * cloudiness;
            cloud = std::clamp(cloud, 0.1, 1.1);
            if (sun > 0)
              x.power_kw = std::max(0.0, size_kw * sun * cloud * (1 + 0.003 * rng.Normal()));
            x.available_kw = x.power_kw;
            break;
          }
          case DerType::kBattery: {
            double p;
            if (t_h > 10 && t_h < 14 && soc < 95) {  // charging from the roof
              p = -size_kw * (0.3 + 0.4 * std::sin(M_PI * (t_h - 10) / 4)) *
                  (1 + 0.1 * rng.Normal());
            } else if (t_h > 17 && t_h < 22 && soc > 10) {  // covering the evening
              p = size_kw * (0.2 + 0.3 * rng.Uniform());
            } else {
              p = 0.02 * rng.Normal();
            }
            x.power_kw = std::clamp(p, -size_kw, size_kw);
            const double e_kwh = x.power_kw * interval_s / 3600;
            soc -= (e_kwh > 0 ? e_kwh / 0.95 : e_kwh * 0.95) / battery_kwh * 100;
            soc = std::clamp(soc, 0.0, 100.0);
            x.soc_pct = std::round(soc * 10) / 10;
            x.available_kw = soc > 10 ? size_kw : 0;
            break;
          }
          case DerType::kEv: {
            if (!ev_charging && ev_today && t_h >= ev_arrival_h && t_h < ev_arrival_h + 0.01) {
              ev_charging = true;
              ev_need_kwh = 5 + 35 * rng.Uniform();
              ev_soc = 20 + 40 * rng.Uniform();
            }
            if (ev_charging) {
              x.power_kw =
                  -size_kw * (ev_need_kwh < 2 ? 0.3 + 0.35 * ev_need_kwh : 1) + 0.01 * rng.Normal();
              ev_need_kwh += x.power_kw * interval_s / 3600;
              ev_soc -= x.power_kw * interval_s / 3600 / 60 * 100;
              if (ev_need_kwh <= 0) ev_charging = false;
              if (ev_reports_soc) x.soc_pct = std::round(std::min(ev_soc, 100.0));
            } else {
              x.power_kw = -0.003;  // standby
            }
            break;
          }
          case DerType::kLoad: {
            const double daily = 0.6 + 0.4 * std::sin(2 * M_PI * (t_h / 24 + phase));
            const double duty = std::sin(2 * M_PI * t_h * 3 + phase * 7) > 0.2 ? 1.0 : 0.4;
            x.power_kw = -size_kw * daily * duty * (1 + 0.03 * rng.Normal());
            x.available_kw = 0.3 * -x.power_kw;  // what it could shed
            break;
          }
          case DerType::kWind: {
            wind += (wind_mean - wind) * std::min(1.0, interval_s / 600) +
                    rng.Normal() * 0.15 * wind_mean * std::sqrt(interval_s / 60);
            wind = std::max(0.0, wind);
            const double f = wind < 3    ? 0
                             : wind < 12 ? std::pow((wind - 3) / 9, 3)
                             : wind < 25 ? 1
                                         : 0;
            x.power_kw = size_kw * f;
            x.available_kw = x.power_kw;
            break;
          }
        }
        x.power_kw = std::round(x.power_kw * 1000) / 1000;
        samples.push_back(x);
      }
      if (offline_buckets > 0) {
        --offline_buckets;
        continue;
      }
      const int64_t start_ms = k2025Ms + (static_cast<int64_t>(day) * kChunkBuckets + k) * 300000;
      out.push_back(RollUp(samples, start_ms, bucket_s, interval_s));
    }
  }
  return out;
}

// The series cut into the chunks storage would seal.
std::vector<std::vector<Bucket>> Chunks(const std::vector<Bucket>& series, int64_t resolution_s) {
  std::vector<std::vector<Bucket>> chunks;
  for (const Bucket& b : series) {
    if (chunks.empty() || ChunkStart(b.start_ms, resolution_s) !=
                              ChunkStart(chunks.back().front().start_ms, resolution_s)) {
      chunks.emplace_back();
    }
    chunks.back().push_back(b);
  }
  return chunks;
}

}  // namespace

TEST_CASE("random chunks round-trip within half a quantum", "[chunk_codec]") {
  Rng rng(20250101);
  for (int round = 0; round < 3000; ++round) {
    const int64_t resolution_s = RandomResolution(&rng);
    const std::vector<Bucket> chunk = RandomChunk(&rng, resolution_s);
    INFO("round " << round << ", resolution_s " << resolution_s << ", " << chunk.size()
                  << " buckets");
    auto blob = EncodeChunk(chunk, resolution_s);
    REQUIRE(blob.ok());
    auto decoded = DecodeChunk(*blob, resolution_s);
    INFO(decoded.status().ToString());
    REQUIRE(decoded.ok());
    RequireStored(chunk, *decoded);
  }
}

TEST_CASE("a single bucket and a full day of buckets round-trip", "[chunk_codec]") {
  for (size_t n : {size_t{1}, size_t{2}, static_cast<size_t>(kChunkBuckets)}) {
    const std::vector<Bucket> chunk = SimpleChunk(n);
    auto blob = EncodeChunk(chunk, derms::history::k5Min);
    REQUIRE(blob.ok());
    auto decoded = DecodeChunk(*blob, derms::history::k5Min);
    REQUIRE(decoded.ok());
    RequireStored(chunk, *decoded);
  }
  // The last bucket of a chunk, chunks before 1970, and the last bucket start
  // an int64 holds.
  const int64_t last_ms = INT64_MAX / 300000 * 300000;
  for (int64_t start_ms : {k2025Ms + 287 * 300000, int64_t{-300000}, -k2025Ms, last_ms}) {
    std::vector<Bucket> chunk = SimpleChunk(1);
    chunk[0].start_ms = start_ms;
    auto blob = EncodeChunk(chunk, derms::history::k5Min);
    REQUIRE(blob.ok());
    auto decoded = DecodeChunk(*blob, derms::history::k5Min);
    REQUIRE(decoded.ok());
    RequireStored(chunk, *decoded);
  }
}

TEST_CASE("a bucket whose chunk starts before the int64 range is rejected", "[chunk_codec]") {
  std::vector<Bucket> chunk = SimpleChunk(1);
  chunk[0].start_ms = INT64_MIN / 300000 * 300000;
  auto blob = EncodeChunk(chunk, derms::history::k5Min);
  REQUIRE_FALSE(blob.ok());
  CHECK(blob.status().code() == "invalid_value");
  CHECK_THAT(blob.status().ToString(), Catch::Contains(std::to_string(chunk[0].start_ms)));
}

TEST_CASE("values at the edge of the stored range round-trip", "[chunk_codec]") {
  std::vector<Bucket> chunk = SimpleChunk(3);
  const double max_kw = 9007199254740.99;  // just under 2^53 W
  chunk[0].mean_kw = max_kw;
  chunk[0].max_kw = max_kw;
  chunk[0].min_kw = -max_kw;  // mean - min is 2^54 quanta
  chunk[1].mean_kw = -max_kw;
  chunk[1].max_kw = max_kw;
  chunk[1].min_kw = -max_kw;
  chunk[1].availability = 900719925474.09;  // just under 2^53 quanta
  chunk[1].export_kwh = -900719925474.09;
  chunk[2].samples = UINT32_MAX;
  chunk[2].soc_pct = 90071992547409.9;
  chunk[2].capacity_kw = -max_kw;
  auto blob = EncodeChunk(chunk, derms::history::k5Min);
  INFO(blob.status().ToString());
  REQUIRE(blob.ok());
  auto decoded = DecodeChunk(*blob, derms::history::k5Min);
  REQUIRE(decoded.ok());
  RequireStored(chunk, *decoded);
}

TEST_CASE("encoding names the bucket and field of a value it cannot store", "[chunk_codec]") {
  struct Case {
    const char* field;
    void (*set)(Bucket*, double);
  };
  const Case cases[] = {
      {"availability", [](Bucket* b, double v) { b->availability = v; }},
      {"mean_kw", [](Bucket* b, double v) { b->mean_kw = v; }},
      {"max_kw", [](Bucket* b, double v) { b->max_kw = v; }},
      {"min_kw", [](Bucket* b, double v) { b->min_kw = v; }},
      {"export_kwh", [](Bucket* b, double v) { b->export_kwh = v; }},
      {"import_kwh", [](Bucket* b, double v) { b->import_kwh = v; }},
      {"capacity_kw", [](Bucket* b, double v) { b->capacity_kw = v; }},
      {"soc_pct", [](Bucket* b, double v) { b->soc_pct = v; }},
  };
  for (const Case& c : cases) {
    for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL, 1e20, -1e20}) {
      std::vector<Bucket> chunk = SimpleChunk(5);
      c.set(&chunk[3], bad);
      auto blob = EncodeChunk(chunk, derms::history::k5Min);
      INFO(c.field << " = " << bad);
      REQUIRE_FALSE(blob.ok());
      CHECK(blob.status().code() == "invalid_value");
      const std::string message = blob.status().message();
      CHECK_THAT(message, Catch::Contains(c.field));
      CHECK_THAT(message, Catch::Contains(std::to_string(chunk[3].start_ms)));
      CHECK_THAT(message, Catch::Contains(std::isfinite(bad) ? "2^53" : "not a finite number"));
    }
  }
  // Just past the range.
  std::vector<Bucket> chunk = SimpleChunk(1);
  chunk[0].export_kwh = 900719925474.1;
  auto blob = EncodeChunk(chunk, derms::history::k5Min);
  REQUIRE_FALSE(blob.ok());
  CHECK_THAT(blob.status().ToString(), Catch::Contains("export_kwh"));
}

TEST_CASE("encoding rejects starts out of order, misaligned or outside the chunk",
          "[chunk_codec]") {
  auto fails = [](std::vector<Bucket> chunk, int64_t resolution_s, const std::string& words) {
    auto blob = EncodeChunk(chunk, resolution_s);
    INFO(blob.status().ToString());
    REQUIRE_FALSE(blob.ok());
    CHECK(blob.status().code() == "invalid_value");
    CHECK_THAT(blob.status().ToString(), Catch::Contains(words));
  };
  std::vector<Bucket> chunk = SimpleChunk(4);
  std::swap(chunk[1], chunk[2]);
  fails(chunk, derms::history::k5Min, "start_ms " + std::to_string(chunk[2].start_ms));

  chunk = SimpleChunk(4);
  chunk[2].start_ms = chunk[1].start_ms;
  fails(chunk, derms::history::k5Min, "must increase");

  chunk = SimpleChunk(4);
  chunk[3].start_ms += 1000;
  fails(chunk, derms::history::k5Min, "not a bucket start");

  chunk = SimpleChunk(4);
  fails(chunk, derms::history::kHour, "not a bucket start");

  chunk = SimpleChunk(4);
  chunk[3].start_ms = k2025Ms + 288 * 300000;  // the next day's first bucket
  fails(chunk, derms::history::k5Min, "outside the chunk");

  fails({}, derms::history::k5Min, "a chunk holds 1 to 288");
  fails(SimpleChunk(289), derms::history::k5Min, "a chunk holds 1 to 288");
  fails(SimpleChunk(2), 0, "resolution_s 0");
  fails(SimpleChunk(2), -300, "resolution_s -300");
}

TEST_CASE("every truncation and byte flip of a blob is reported as corrupt", "[chunk_codec]") {
  Rng rng(7);
  std::vector<std::string> blobs;
  for (int i = 0; i < 20; ++i) {
    const int64_t resolution_s = i % 2 ? derms::history::k5Min : derms::history::kHour;
    auto blob = EncodeChunk(RandomChunk(&rng, resolution_s), resolution_s);
    REQUIRE(blob.ok());
    blobs.push_back(*blob);
  }
  for (size_t i = 0; i < blobs.size(); ++i) {
    const std::string& blob = blobs[i];
    const int64_t resolution_s = i % 2 ? derms::history::k5Min : derms::history::kHour;
    for (size_t n = 0; n < blob.size(); ++n) {
      auto decoded = DecodeChunk(std::string_view(blob).substr(0, n), resolution_s);
      REQUIRE_FALSE(decoded.ok());
      REQUIRE(decoded.status().code() == "corrupt_chunk");
    }
    REQUIRE_FALSE(DecodeChunk(blob + '\0', resolution_s).ok());
    for (int flip = 0; flip < 500; ++flip) {
      std::string damaged = blob;
      const int bytes = 1 + static_cast<int>(rng.Below(3));
      for (int k = 0; k < bytes; ++k) {
        damaged[rng.Below(static_cast<uint32_t>(damaged.size()))] ^=
            static_cast<char>(1 + rng.Below(255));
      }
      if (damaged == blob) continue;
      auto decoded = DecodeChunk(damaged, resolution_s);
      REQUIRE_FALSE(decoded.ok());
      REQUIRE(decoded.status().code() == "corrupt_chunk");
    }
  }
}

TEST_CASE("damage behind a valid checksum is caught or decodes to stored values", "[chunk_codec]") {
  Rng rng(11);
  int caught = 0, total = 0;
  for (int i = 0; i < 40; ++i) {
    const int64_t resolution_s = RandomResolution(&rng);
    auto blob = EncodeChunk(RandomChunk(&rng, resolution_s), resolution_s);
    REQUIRE(blob.ok());
    for (int variant = 0; variant < 300; ++variant) {
      std::string damaged = *blob;
      switch (rng.Below(4)) {
        case 0:  // flip bytes
          for (int k = 0; k < 1 + static_cast<int>(rng.Below(4)); ++k) {
            damaged[rng.Below(static_cast<uint32_t>(damaged.size() - 4))] ^=
                static_cast<char>(1 << rng.Below(8));
          }
          break;
        case 1:  // cut the body short
          damaged.erase(rng.Below(static_cast<uint32_t>(damaged.size() - 4)),
                        1 + rng.Below(static_cast<uint32_t>(damaged.size())));
          damaged.append(4, '\0');
          break;
        case 2:  // random body after a valid header
          for (size_t k = 4; k + 4 < damaged.size(); ++k) {
            damaged[k] = static_cast<char>(rng.Below(256));
          }
          break;
        default:  // all ones: the longest codes
          for (size_t k = 4; k + 4 < damaged.size(); ++k) damaged[k] = '\xff';
      }
      if (damaged.size() < 5) continue;
      Reseal(&damaged);
      auto decoded = DecodeChunk(damaged, resolution_s);
      ++total;
      if (!decoded.ok()) {
        ++caught;
        REQUIRE(decoded.status().code() == "corrupt_chunk");
        continue;
      }
      // Undetectable damage still decodes to values a chunk can hold.
      REQUIRE(decoded->size() >= 1);
      REQUIRE(decoded->size() <= static_cast<size_t>(kChunkBuckets));
      for (const Bucket& b : *decoded) {
        REQUIRE(std::isfinite(b.mean_kw));
        REQUIRE(std::fabs(b.max_kw) <= 9007199254740.992);
        REQUIRE(std::fabs(b.min_kw) <= 9007199254740.992);
      }
    }
  }
  // The body's own structure catches most damage even without the checksum.
  CHECK(caught > total * 9 / 10);
}

TEST_CASE("a blob read at another resolution or of an unknown version is corrupt",
          "[chunk_codec]") {
  auto blob = EncodeChunk(SimpleChunk(10), derms::history::k5Min);
  REQUIRE(blob.ok());
  auto decoded = DecodeChunk(*blob, derms::history::kHour);
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.status().code() == "corrupt_chunk");
  CHECK_THAT(decoded.status().ToString(), Catch::Contains("resolution 300 s read as"));

  std::string future = *blob;
  future[0] = 2;
  Reseal(&future);
  decoded = DecodeChunk(future, derms::history::k5Min);
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.status().code() == "corrupt_chunk");
  CHECK_THAT(decoded.status().ToString(), Catch::Contains("version 2"));

  decoded = DecodeChunk("", derms::history::k5Min);
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.status().code() == "corrupt_chunk");
}

TEST_CASE("a blob of format version 1 still decodes", "[chunk_codec]") {
  // Written by the first version of the encoder from SimpleChunk(4): chunks
  // already stored must stay readable whatever the encoder does later.
  const std::string hex =
      "01ac02f2b90203f5aa13e827190c086ac6cc63366e4a84816697ba4295a9370134d800004bf35b61";
  std::string blob;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    blob.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  auto decoded = DecodeChunk(blob, derms::history::k5Min);
  INFO(decoded.status().ToString());
  REQUIRE(decoded.ok());
  RequireStored(SimpleChunk(4), *decoded);
}

TEST_CASE("a week of a mixed fleet's 5-minute rollups takes under 4.5 bytes a bucket",
          "[chunk_codec]") {
  // 50 DERs, ten of each type, 7 days: about 100,000 buckets in 350 chunks.
  std::map<std::string, std::pair<double, double>> bytes_and_buckets;
  for (uint32_t i = 0; i < 50; ++i) {
    const DerType type = kDerTypes[i % 5];
    for (const auto& chunk : Chunks(FleetSeries(type, 1000 + i, 7), derms::history::k5Min)) {
      auto blob = EncodeChunk(chunk, derms::history::k5Min);
      REQUIRE(blob.ok());
      auto decoded = DecodeChunk(*blob, derms::history::k5Min);
      REQUIRE(decoded.ok());
      RequireStored(chunk, *decoded);
      for (const std::string& key : {std::string(DerTypeName(type)), std::string("all")}) {
        bytes_and_buckets[key].first += static_cast<double>(blob->size());
        bytes_and_buckets[key].second += static_cast<double>(chunk.size());
      }
    }
  }
  for (const auto& [key, sizes] : bytes_and_buckets) {
    const double per_bucket = sizes.first / sizes.second;
    INFO(key << ": " << per_bucket << " bytes a bucket over " << sizes.second << " buckets");
    CHECK(per_bucket <= (key == "all" ? 4.5 : 6.5));
  }
  // Five years of 1,000 such DERs would take 525.6 million buckets.
  const auto& all = bytes_and_buckets["all"];
  CHECK(all.first / all.second * 525.6e6 < 2.5e9);
}
