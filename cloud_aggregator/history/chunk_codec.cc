#include "cloud_aggregator/history/chunk_codec.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <utility>

// Format, version 1 (all integers little-endian):
//
//   byte     version = 1
//   varint   resolution_s
//   varint   zigzag(chunk index): the chunk starts at index * resolution_s *
//            1000 * kChunkBuckets ms
//   varint   bucket count - 1
//   bytes    body, range coded (below)
//   4 bytes  CRC-32 (IEEE, as zlib's crc32) of everything before it
//
// Every value is quantized to an integer count of its quantum (samples as
// is), kept within +-2^53, and stored as the residual from a prediction. The
// body is one binary range coder stream (LZMA's, 12-bit probabilities that
// adapt fast at first, leading zero byte dropped) holding, in order:
//   1. presence: one bit per slot of the chunk (context: previous slot) until
//      `count` present slots have been seen;
//   2. one selector bit per column (samples, availability, mean, max - mean,
//      mean - min, export, import, capacity, soc) picking one of the
//      column's two predictors (kPredictors below), then the parameters the
//      chosen predictors need, as 7 raw bits of length and raw bits of value;
//   3. each column's residuals over the present buckets, in that order, soc
//      presence bits (context: previous bucket) just before the soc column,
//      whose values exist for the buckets with a soc only. A residual is coded
//      as: is-zero bit, 6-bit length of |r| (bit tree), sign bit, the bit
//      below the leading one (by length), the rest raw; a fresh adaptive
//      model per column.
// The encoder tries both predictors of each column and keeps the smaller.
// Buckets are usually consecutive and slowly changing, and export, import and
// capacity follow from mean power, so most residuals are zero or small.

namespace derms::history {
namespace {

constexpr uint8_t kVersion = 1;
constexpr int64_t kMaxQuanta = int64_t{1} << 53;
// Predictions are clamped so residuals stay far from int64 overflow.
constexpr int64_t kMaxPrediction = int64_t{1} << 55;
// A decoded residual beyond this is damage (an encoder never makes one).
constexpr int kMaxResidualBits = 62;
// Ratio parameters are fixed point with 16 fraction bits, at most +-256.
constexpr int kRatioFractionBits = 16;
constexpr int64_t kMaxRatio = int64_t{1} << 24;

constexpr double kPowerScale = 1000;
constexpr double kEnergyScale = 10000;
constexpr double kSocScale = 100;
constexpr int64_t kAvailabilityScale = 10000;
static_assert(kPowerScale * kPowerQuantumKw == 1.0, "power scale matches its quantum");
static_assert(kEnergyScale * kEnergyQuantumKwh == 1.0, "energy scale matches its quantum");
static_assert(kSocScale * kSocQuantumPct == 1.0, "soc scale matches its quantum");
static_assert(kAvailabilityScale * kAvailabilityQuantum == 1.0, "availability scale matches");

Status Corrupt(const std::string& what) {
  return Status::Error("corrupt_chunk", "chunk blob: " + what);
}
Status Invalid(const std::string& what) { return Status::Error("invalid_value", what); }

// ---- CRC-32 (reflected polynomial 0xEDB88320, as zlib and PNG) ----

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

uint32_t Crc32(std::string_view data) {
  uint32_t c = 0xFFFFFFFFu;
  for (char ch : data) c = kCrcTable[(c ^ static_cast<uint8_t>(ch)) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// ---- Varints for the header ----

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t z) { return static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1); }

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view in, size_t* pos, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= in.size()) return false;
    uint64_t byte = static_cast<uint8_t>(in[(*pos)++]);
    if (shift == 63 && byte > 1) return false;
    *v |= (byte & 0x7F) << shift;
    if (byte < 0x80) return true;
  }
  return false;
}

// ---- Binary range coder (as LZMA's) ----

constexpr int kProbBits = 12;
constexpr uint32_t kProbOne = 1u << kProbBits;
constexpr uint32_t kTopValue = 1u << 24;

// The probability that the next bit is 0, learning fast while it has seen few
// bits: a chunk holds at most 288 values per column, too few for a slow rate.
struct Prob {
  uint16_t p = kProbOne / 2;
  uint8_t seen = 0;

  void Update(int bit) {
    static constexpr int kShift[] = {1, 2, 2, 3, 3, 3, 4};
    const int shift = kShift[seen];
    if (seen < 6) ++seen;
    int next = bit ? p - (p >> shift) : p + ((kProbOne - p) >> shift);
    p = static_cast<uint16_t>(std::clamp(next, 16, static_cast<int>(kProbOne) - 16));
  }
};

class RangeEncoder {
 public:
  void Bit(Prob* prob, int bit) {
    const uint32_t bound = (range_ >> kProbBits) * prob->p;
    if (bit) {
      low_ += bound;
      range_ -= bound;
    } else {
      range_ = bound;
    }
    prob->Update(bit);
    Normalize();
  }
  // The low `bits` bits of `v`, each with probability one half.
  void Direct(uint64_t v, int bits) {
    while (bits-- > 0) {
      range_ >>= 1;
      if ((v >> bits) & 1) low_ += range_;
      Normalize();
    }
  }
  // The coded bytes; the encoder is spent.
  std::string Finish() {
    for (int i = 0; i < 5; ++i) ShiftLow();
    // The first byte stands for the bits above the initial range: always 0.
    return out_.substr(1);
  }

 private:
  void Normalize() {
    while (range_ < kTopValue) {
      range_ <<= 8;
      ShiftLow();
    }
  }
  void ShiftLow() {
    if (static_cast<uint32_t>(low_) < 0xFF000000u || (low_ >> 32) != 0) {
      const uint8_t carry = static_cast<uint8_t>(low_ >> 32);
      uint8_t byte = cache_;
      do {
        out_.push_back(static_cast<char>(static_cast<uint8_t>(byte + carry)));
        byte = 0xFF;
      } while (--pending_ != 0);
      cache_ = static_cast<uint8_t>(low_ >> 24);
    }
    ++pending_;
    low_ = (low_ & 0x00FFFFFFu) << 8;
  }

  uint64_t low_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
  uint8_t cache_ = 0;
  uint64_t pending_ = 1;
  std::string out_;
};

// Reads past the end as zero bytes; Exhausted() tells whether the input was
// consumed exactly, as an encoder's output is.
class RangeDecoder {
 public:
  explicit RangeDecoder(std::string_view in) : in_(in) {
    for (int i = 0; i < 4; ++i) code_ = (code_ << 8) | NextByte();
  }
  int Bit(Prob* prob) {
    const uint32_t bound = (range_ >> kProbBits) * prob->p;
    int bit;
    if (code_ < bound) {
      range_ = bound;
      bit = 0;
    } else {
      code_ -= bound;
      range_ -= bound;
      bit = 1;
    }
    prob->Update(bit);
    Normalize();
    return bit;
  }
  uint64_t Direct(int bits) {
    uint64_t v = 0;
    while (bits-- > 0) {
      range_ >>= 1;
      uint32_t bit = code_ >= range_ ? 1 : 0;
      if (bit) code_ -= range_;
      v = (v << 1) | bit;
      Normalize();
    }
    return v;
  }
  bool ExactlyConsumed() const { return pos_ == in_.size() && !overrun_; }

 private:
  void Normalize() {
    while (range_ < kTopValue) {
      range_ <<= 8;
      code_ = (code_ << 8) | NextByte();
    }
  }
  uint32_t NextByte() {
    if (pos_ < in_.size()) return static_cast<uint8_t>(in_[pos_++]);
    overrun_ = true;
    return 0;
  }

  std::string_view in_;
  size_t pos_ = 0;
  bool overrun_ = false;
  uint32_t code_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
};

int BitLength(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

// An adaptive model of one column's residuals.
struct IntModel {
  Prob zero;
  Prob sign;
  std::array<Prob, 64> length;  // bit tree over (bit length - 1)
  std::array<Prob, 65> second;  // the bit below the leading one, by length
};

// REQUIRES: |v| < 2^kMaxResidualBits.
void PutInt(RangeEncoder* rc, IntModel* m, int64_t v) {
  const uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  const int len = BitLength(mag);
  rc->Bit(&m->zero, len == 0);
  if (len == 0) return;
  size_t node = 1;
  for (int i = 5; i >= 0; --i) {
    const int bit = ((len - 1) >> i) & 1;
    rc->Bit(&m->length[node], bit);
    node = node * 2 + bit;
  }
  rc->Bit(&m->sign, v < 0);
  if (len >= 2) {
    rc->Bit(&m->second[len], (mag >> (len - 2)) & 1);
    rc->Direct(mag, len - 2);
  }
}

std::optional<int64_t> GetInt(RangeDecoder* rd, IntModel* m) {
  if (rd->Bit(&m->zero)) return 0;
  size_t node = 1;
  for (int i = 0; i < 6; ++i) node = node * 2 + rd->Bit(&m->length[node]);
  const int len = static_cast<int>(node - 64) + 1;
  if (len > kMaxResidualBits) return std::nullopt;
  const bool negative = rd->Bit(&m->sign);
  uint64_t mag = 1;
  if (len >= 2) {
    mag = (mag << 1) | static_cast<uint64_t>(rd->Bit(&m->second[len]));
    mag = (mag << (len - 2)) | rd->Direct(len - 2);
  }
  const int64_t v = static_cast<int64_t>(mag);
  return negative ? -v : v;
}

// A parameter: 7 raw bits of length, then the zigzagged value's raw bits.
void PutParam(RangeEncoder* rc, int64_t v) {
  const uint64_t z = ZigZag(v);
  const int len = BitLength(z);
  rc->Direct(static_cast<uint64_t>(len), 7);
  rc->Direct(z, len);
}

std::optional<int64_t> GetParam(RangeDecoder* rd) {
  const int len = static_cast<int>(rd->Direct(7));
  if (len > 64) return std::nullopt;
  return UnZigZag(rd->Direct(len));
}

// ---- Columns and predictors ----

enum Column {
  kSamples,
  kAvailability,
  kMean,
  kAbove,  // max_kw - mean_kw
  kBelow,  // mean_kw - min_kw
  kExport,
  kImport,
  kCapacity,
  kSoc,  // only the buckets that have one
  kColumns
};
constexpr const char* kColumnNames[kColumns] = {"samples",    "availability", "mean_kw",
                                                "max_kw",     "min_kw",       "export_kwh",
                                                "import_kwh", "capacity_kw",  "soc_pct"};

enum Predictor {
  kZero,
  kPrevious,
  kLinear,               // extrapolates the previous two
  kTypicalSamples,       // the chunk's most frequent sample count
  kAvailabilityOfCount,  // availability scales with samples, up to 1
  kNetExport,            // max(net energy, 0)
  kNetImport,            // export - net energy
  kPowerRatio,           // ratio * mean_kw * availability
  kSocFromEnergy,        // previous soc + ratio * (export - import)
};
// Each column's two predictors; the selector bit picks one.
constexpr Predictor kPredictors[kColumns][2] = {
    {kPrevious, kTypicalSamples}, {kPrevious, kAvailabilityOfCount},
    {kPrevious, kLinear},         {kZero, kPrevious},
    {kZero, kPrevious},           {kNetExport, kPrevious},
    {kNetImport, kPrevious},      {kPrevious, kPowerRatio},
    {kPrevious, kSocFromEnergy}};

struct Params {
  int64_t resolution_s = 0;
  int64_t typical_samples = 0;
  int64_t typical_availability = 0;
  int64_t capacity_ratio = 0;
  int64_t soc_ratio = 0;
};

// A chunk as integers: columns over the present buckets (kSoc over those with
// a soc, listed in soc_rows).
struct Table {
  std::array<std::vector<int64_t>, kColumns> col;
  std::vector<size_t> soc_rows;
};

int64_t Clamp(__int128 v, int64_t limit) {
  return static_cast<int64_t>(std::clamp<__int128>(v, -limit, limit));
}

// round(a * b * c / d), clamped to +-kMaxPrediction. REQUIRES: |a|, |b| <=
// 2^56, 0 < c < 2^46, 0 < d < 2^40.
int64_t MulDivRound(int64_t a, int64_t b, int64_t c, int64_t d) {
  __int128 x = static_cast<__int128>(a) * b;
  constexpr __int128 kLimit = static_cast<__int128>(1) << 80;
  if (x > kLimit || x < -kLimit) return x > 0 ? kMaxPrediction : -kMaxPrediction;
  x *= c;
  constexpr __int128 kSmall = static_cast<__int128>(1) << 61;
  if (x < kSmall && x > -kSmall) {  // the usual case: a 64-bit division is far faster
    const int64_t y = static_cast<int64_t>(x);
    return Clamp(y >= 0 ? (y + d / 2) / d : -((-y + d / 2) / d), kMaxPrediction);
  }
  const __int128 q = x >= 0 ? (x + d / 2) / d : -((-x + d / 2) / d);
  return Clamp(q, kMaxPrediction);
}

// Net energy of row i from mean power and availability, in energy quanta:
// mean [W] * availability [1e-4] * resolution [s] / (3600 s/h * 1000).
int64_t NetEnergy(const Table& t, const Params& p, size_t i) {
  return MulDivRound(t.col[kMean][i], t.col[kAvailability][i], p.resolution_s, 3600 * 1000);
}

int64_t Predict(const Table& t, const Params& p, Column c, Predictor pred, size_t i) {
  const std::vector<int64_t>& v = t.col[c];
  const int64_t previous = i > 0 ? v[i - 1] : 0;
  switch (pred) {
    case kZero:
      return 0;
    case kPrevious:
      return previous;
    case kLinear:
      return i >= 2 ? Clamp(2 * static_cast<__int128>(v[i - 1]) - v[i - 2], kMaxPrediction)
                    : previous;
    case kTypicalSamples:
      return p.typical_samples;
    case kAvailabilityOfCount:
      if (p.typical_samples <= 0) return p.typical_availability;
      return std::min(MulDivRound(t.col[kSamples][i], p.typical_availability, 1, p.typical_samples),
                      kAvailabilityScale);
    case kNetExport:
      return std::max<int64_t>(NetEnergy(t, p, i), 0);
    case kNetImport:
      return Clamp(static_cast<__int128>(t.col[kExport][i]) - NetEnergy(t, p, i), kMaxPrediction);
    case kPowerRatio: {
      const int64_t power =
          MulDivRound(t.col[kMean][i], t.col[kAvailability][i], 1, kAvailabilityScale);
      return MulDivRound(power, p.capacity_ratio, 1, int64_t{1} << kRatioFractionBits);
    }
    case kSocFromEnergy: {
      const size_t row = t.soc_rows[i];
      const int64_t net = t.col[kExport][row] - t.col[kImport][row];
      return Clamp(static_cast<__int128>(previous) +
                       MulDivRound(net, p.soc_ratio, 1, int64_t{1} << kRatioFractionBits),
                   kMaxPrediction);
    }
  }
  return 0;
}

// The range a decoded column value must lie in.
std::pair<int64_t, int64_t> ColumnRange(Column c) {
  if (c == kSamples) return {0, std::numeric_limits<uint32_t>::max()};
  if (c == kAbove || c == kBelow) return {-2 * kMaxQuanta, 2 * kMaxQuanta};
  return {-kMaxQuanta, kMaxQuanta};
}

bool UsesTypical(Predictor p) { return p == kTypicalSamples || p == kAvailabilityOfCount; }

// Least-squares y ~ ratio * x in 16-bit fixed point, within +-kMaxRatio.
int64_t FitRatio(const std::vector<std::pair<double, double>>& xy) {
  double sxy = 0, sxx = 0;
  for (const auto& [x, y] : xy) {
    sxy += x * y;
    sxx += x * x;
  }
  if (!(sxx > 0)) return 0;
  const double r = std::ldexp(sxy / sxx, kRatioFractionBits);
  if (!std::isfinite(r)) return 0;
  return static_cast<int64_t>(
      std::llround(std::clamp(r, -static_cast<double>(kMaxRatio), static_cast<double>(kMaxRatio))));
}

// The residuals of column c under `pred`.
std::vector<int64_t> Residuals(const Table& t, const Params& p, Column c, Predictor pred) {
  std::vector<int64_t> r(t.col[c].size());
  for (size_t i = 0; i < r.size(); ++i) r[i] = t.col[c][i] - Predict(t, p, c, pred, i);
  return r;
}

void PutColumn(RangeEncoder* rc, const std::vector<int64_t>& residuals) {
  IntModel model;
  for (int64_t r : residuals) PutInt(rc, &model, r);
}

size_t CodedSize(const std::vector<int64_t>& residuals) {
  RangeEncoder rc;
  PutColumn(&rc, residuals);
  return rc.Finish().size();
}

// ---- Quantizing ----

struct Field {
  const char* name;
  double value;
  double scale;
  const char* quantum;
};

Status Quantize(const Bucket& b, const Field& f, int64_t* out) {
  if (!std::isfinite(f.value)) {
    return Invalid(fmt::format("bucket start_ms {}: {} {} is not a finite number", b.start_ms,
                               f.name, f.value));
  }
  const double scaled = f.value * f.scale;
  if (std::fabs(scaled) > static_cast<double>(kMaxQuanta)) {
    return Invalid(fmt::format(
        "bucket start_ms {}: {} {} is beyond what a chunk holds (|value| <= 2^53 quanta of {})",
        b.start_ms, f.name, f.value, f.quantum));
  }
  *out = std::llround(scaled);
  return Status::Ok();
}

int64_t ChunkMs(int64_t resolution_s) { return resolution_s * 1000 * kChunkBuckets; }

constexpr uint64_t kMaxResolutionS =
    static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / (1000 * kChunkBuckets));

}  // namespace

StatusOr<std::string> EncodeChunk(const std::vector<Bucket>& buckets, int64_t resolution_s) {
  if (resolution_s <= 0 || static_cast<uint64_t>(resolution_s) > kMaxResolutionS) {
    return Invalid(fmt::format("resolution_s {} is not a positive number of seconds below {}",
                               resolution_s, kMaxResolutionS));
  }
  if (buckets.empty() || buckets.size() > static_cast<size_t>(kChunkBuckets)) {
    return Invalid(fmt::format("{} buckets: a chunk holds 1 to {}", buckets.size(), kChunkBuckets));
  }
  const int64_t step_ms = resolution_s * 1000;
  const int64_t chunk_ms = ChunkMs(resolution_s);
  const int64_t first_ms = buckets.front().start_ms;
  int64_t chunk_index = first_ms / chunk_ms;
  if (first_ms % chunk_ms < 0) --chunk_index;
  int64_t chunk_start_ms;
  if (__builtin_mul_overflow(chunk_index, chunk_ms, &chunk_start_ms)) {
    return Invalid(fmt::format("bucket start_ms {}: too far from 1970 for a chunk", first_ms));
  }

  Params params;
  params.resolution_s = resolution_s;
  Table t;
  for (auto& c : t.col) c.reserve(buckets.size());
  std::vector<int64_t> slots;
  std::vector<bool> has_soc;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const Bucket& b = buckets[i];
    if (b.start_ms % step_ms != 0) {
      return Invalid(fmt::format("bucket start_ms {}: not a bucket start of resolution {} s",
                                 b.start_ms, resolution_s));
    }
    if (i > 0 && b.start_ms <= buckets[i - 1].start_ms) {
      return Invalid(fmt::format(
          "bucket start_ms {}: not after the previous bucket's {} (starts must increase)",
          b.start_ms, buckets[i - 1].start_ms));
    }
    // Unsigned: the difference is in [0, 2^64) but may not fit an int64.
    const uint64_t offset_ms =
        static_cast<uint64_t>(b.start_ms) - static_cast<uint64_t>(chunk_start_ms);
    if (offset_ms >= static_cast<uint64_t>(chunk_ms)) {
      return Invalid(
          fmt::format("bucket start_ms {}: outside the chunk of the first bucket, [{}, {} + {})",
                      b.start_ms, chunk_start_ms, chunk_start_ms, chunk_ms));
    }
    slots.push_back(static_cast<int64_t>(offset_ms) / step_ms);

    int64_t availability, mean, max, min, exp, imp, capacity, soc = 0;
    for (auto [field, out] : {
             std::pair{Field{"availability", b.availability,
                             static_cast<double>(kAvailabilityScale), "0.0001"},
                       &availability},
             std::pair{Field{"mean_kw", b.mean_kw, kPowerScale, "0.001"}, &mean},
             std::pair{Field{"max_kw", b.max_kw, kPowerScale, "0.001"}, &max},
             std::pair{Field{"min_kw", b.min_kw, kPowerScale, "0.001"}, &min},
             std::pair{Field{"export_kwh", b.export_kwh, kEnergyScale, "0.0001"}, &exp},
             std::pair{Field{"import_kwh", b.import_kwh, kEnergyScale, "0.0001"}, &imp},
             std::pair{Field{"capacity_kw", b.capacity_kw, kPowerScale, "0.001"}, &capacity},
         }) {
      Status s = Quantize(b, field, out);
      if (!s.ok()) return s;
    }
    if (b.soc_pct) {
      Status s = Quantize(b, Field{"soc_pct", *b.soc_pct, kSocScale, "0.01"}, &soc);
      if (!s.ok()) return s;
      t.soc_rows.push_back(i);
      t.col[kSoc].push_back(soc);
    }
    has_soc.push_back(b.soc_pct.has_value());
    t.col[kSamples].push_back(b.samples);
    t.col[kAvailability].push_back(availability);
    t.col[kMean].push_back(mean);
    t.col[kAbove].push_back(max - mean);
    t.col[kBelow].push_back(mean - min);
    t.col[kExport].push_back(exp);
    t.col[kImport].push_back(imp);
    t.col[kCapacity].push_back(capacity);
  }

  // Parameters: the typical bucket, and ratios fitted by least squares.
  {
    std::map<int64_t, int> counts;
    for (int64_t s : t.col[kSamples]) ++counts[s];
    int best = 0;
    for (const auto& [s, n] : counts) {
      if (n > best) {
        best = n;
        params.typical_samples = s;
      }
    }
    for (size_t i = 0; i < buckets.size(); ++i) {
      if (t.col[kSamples][i] == params.typical_samples) {
        params.typical_availability = t.col[kAvailability][i];
        break;
      }
    }
    std::vector<std::pair<double, double>> xy;
    for (size_t i = 0; i < buckets.size(); ++i) {
      xy.emplace_back(static_cast<double>(t.col[kMean][i]) *
                          static_cast<double>(t.col[kAvailability][i]) /
                          static_cast<double>(kAvailabilityScale),
                      static_cast<double>(t.col[kCapacity][i]));
    }
    params.capacity_ratio = FitRatio(xy);
    xy.clear();
    for (size_t j = 1; j < t.soc_rows.size(); ++j) {
      const size_t row = t.soc_rows[j];
      xy.emplace_back(static_cast<double>(t.col[kExport][row] - t.col[kImport][row]),
                      static_cast<double>(t.col[kSoc][j] - t.col[kSoc][j - 1]));
    }
    params.soc_ratio = FitRatio(xy);
  }

  // Each column keeps whichever of its predictors codes smaller.
  std::array<int, kColumns> choice{};
  std::array<std::vector<int64_t>, kColumns> residuals;
  for (int c = 0; c < kColumns; ++c) {
    auto first = Residuals(t, params, Column(c), kPredictors[c][0]);
    auto second = Residuals(t, params, Column(c), kPredictors[c][1]);
    const bool use_second = CodedSize(second) < CodedSize(first);
    choice[c] = use_second ? 1 : 0;
    residuals[c] = use_second ? std::move(second) : std::move(first);
  }

  std::string blob;
  blob.push_back(static_cast<char>(kVersion));
  PutVarint(&blob, static_cast<uint64_t>(resolution_s));
  PutVarint(&blob, ZigZag(chunk_index));
  PutVarint(&blob, buckets.size() - 1);

  RangeEncoder rc;
  std::array<Prob, 2> presence;
  int previous = 1;
  for (size_t i = 0, slot = 0; i < slots.size(); ++slot) {
    const int present = slots[i] == static_cast<int64_t>(slot);
    rc.Bit(&presence[previous], present);
    previous = present;
    if (present) ++i;
  }
  for (int c = 0; c < kColumns; ++c) rc.Direct(static_cast<uint64_t>(choice[c]), 1);
  if (UsesTypical(kPredictors[kSamples][choice[kSamples]]) ||
      UsesTypical(kPredictors[kAvailability][choice[kAvailability]])) {
    PutParam(&rc, params.typical_samples);
    PutParam(&rc, params.typical_availability);
  }
  if (kPredictors[kCapacity][choice[kCapacity]] == kPowerRatio) {
    PutParam(&rc, params.capacity_ratio);
  }
  if (kPredictors[kSoc][choice[kSoc]] == kSocFromEnergy) PutParam(&rc, params.soc_ratio);
  for (int c = 0; c < kSoc; ++c) PutColumn(&rc, residuals[c]);
  std::array<Prob, 2> soc_presence;
  previous = 0;
  for (bool present : has_soc) {
    rc.Bit(&soc_presence[previous], present);
    previous = present;
  }
  PutColumn(&rc, residuals[kSoc]);
  blob += rc.Finish();

  const uint32_t crc = Crc32(blob);
  for (int i = 0; i < 4; ++i) blob.push_back(static_cast<char>(crc >> (8 * i)));
  return blob;
}

StatusOr<std::vector<Bucket>> DecodeChunk(std::string_view blob, int64_t resolution_s) {
  if (resolution_s <= 0 || static_cast<uint64_t>(resolution_s) > kMaxResolutionS) {
    return Invalid(fmt::format("resolution_s {} is not a positive number of seconds below {}",
                               resolution_s, kMaxResolutionS));
  }
  if (blob.size() < 5) return Corrupt(fmt::format("{} bytes, too short for a chunk", blob.size()));
  const std::string_view content = blob.substr(0, blob.size() - 4);
  uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) {
    stored |= static_cast<uint32_t>(static_cast<uint8_t>(blob[content.size() + i])) << (8 * i);
  }
  const uint32_t computed = Crc32(content);
  if (stored != computed) {
    return Corrupt(
        fmt::format("checksum {:08x} does not match the content's {:08x}", stored, computed));
  }
  if (static_cast<uint8_t>(content[0]) != kVersion) {
    return Corrupt(fmt::format("format version {} is not one this build reads ({})",
                               static_cast<uint8_t>(content[0]), kVersion));
  }
  size_t pos = 1;
  uint64_t stored_resolution_s, zigzag_index, count_minus_one;
  if (!GetVarint(content, &pos, &stored_resolution_s) || !GetVarint(content, &pos, &zigzag_index) ||
      !GetVarint(content, &pos, &count_minus_one)) {
    return Corrupt("header cut short");
  }
  if (stored_resolution_s != static_cast<uint64_t>(resolution_s)) {
    return Corrupt(fmt::format("chunk of resolution {} s read as resolution {} s",
                               stored_resolution_s, resolution_s));
  }
  if (count_minus_one >= static_cast<uint64_t>(kChunkBuckets)) {
    return Corrupt(fmt::format("{} buckets, more than a chunk holds", count_minus_one + 1));
  }
  const size_t count = static_cast<size_t>(count_minus_one) + 1;
  const int64_t step_ms = resolution_s * 1000;
  const int64_t chunk_index = UnZigZag(zigzag_index);
  int64_t chunk_start_ms;
  if (__builtin_mul_overflow(chunk_index, ChunkMs(resolution_s), &chunk_start_ms)) {
    return Corrupt(fmt::format("chunk index {} out of range", chunk_index));
  }

  RangeDecoder rd(content.substr(pos));
  std::vector<Bucket> out(count);
  std::array<Prob, 2> presence;
  int previous = 1;
  for (size_t i = 0, slot = 0; i < count; ++slot) {
    if (slot >= static_cast<size_t>(kChunkBuckets)) {
      return Corrupt(fmt::format("{} buckets, fewer present in the chunk's slots", count));
    }
    previous = rd.Bit(&presence[previous]);
    if (previous) {
      if (__builtin_add_overflow(chunk_start_ms, static_cast<int64_t>(slot) * step_ms,
                                 &out[i].start_ms)) {
        return Corrupt(fmt::format("chunk index {} out of range", chunk_index));
      }
      ++i;
    }
  }

  Params params;
  params.resolution_s = resolution_s;
  std::array<Predictor, kColumns> pred;
  for (int c = 0; c < kColumns; ++c) pred[c] = kPredictors[c][rd.Direct(1)];
  auto get_param = [&](int64_t* v, int64_t lo, int64_t hi, const char* what) -> Status {
    auto p = GetParam(&rd);
    if (!p || *p < lo || *p > hi) return Corrupt(fmt::format("parameter {} out of range", what));
    *v = *p;
    return Status::Ok();
  };
  if (UsesTypical(pred[kSamples]) || UsesTypical(pred[kAvailability])) {
    Status s = get_param(&params.typical_samples, 0, std::numeric_limits<uint32_t>::max(),
                         "typical samples");
    if (s.ok()) {
      s = get_param(&params.typical_availability, -kMaxQuanta, kMaxQuanta, "typical availability");
    }
    if (!s.ok()) return s;
  }
  if (pred[kCapacity] == kPowerRatio) {
    Status s = get_param(&params.capacity_ratio, -kMaxRatio, kMaxRatio, "capacity ratio");
    if (!s.ok()) return s;
  }
  if (pred[kSoc] == kSocFromEnergy) {
    Status s = get_param(&params.soc_ratio, -kMaxRatio, kMaxRatio, "soc ratio");
    if (!s.ok()) return s;
  }

  Table t;
  auto decode_column = [&](Column c, size_t n) -> Status {
    IntModel model;
    const auto [lo, hi] = ColumnRange(c);
    t.col[c].reserve(n);
    for (size_t i = 0; i < n; ++i) {
      auto r = GetInt(&rd, &model);
      if (!r) return Corrupt(fmt::format("{} residual too long", kColumnNames[c]));
      // |prediction| <= 2^55 and |residual| < 2^62: no overflow.
      const int64_t v = Predict(t, params, c, pred[c], i) + *r;
      if (v < lo || v > hi) {
        return Corrupt(fmt::format("{} of bucket {} out of range", kColumnNames[c], i));
      }
      t.col[c].push_back(v);
    }
    return Status::Ok();
  };
  for (int c = 0; c < kSoc; ++c) {
    Status s = decode_column(Column(c), count);
    if (!s.ok()) return s;
  }
  std::array<Prob, 2> soc_presence;
  previous = 0;
  for (size_t i = 0; i < count; ++i) {
    previous = rd.Bit(&soc_presence[previous]);
    if (previous) t.soc_rows.push_back(i);
  }
  {
    Status s = decode_column(kSoc, t.soc_rows.size());
    if (!s.ok()) return s;
  }
  if (!rd.ExactlyConsumed()) return Corrupt("body length does not match its content");

  for (size_t i = 0; i < count; ++i) {
    Bucket& b = out[i];
    const int64_t mean = t.col[kMean][i];
    const int64_t max = mean + t.col[kAbove][i];
    const int64_t min = mean - t.col[kBelow][i];
    if (max < -kMaxQuanta || max > kMaxQuanta || min < -kMaxQuanta || min > kMaxQuanta) {
      return Corrupt(fmt::format("min_kw or max_kw of bucket {} out of range", i));
    }
    b.samples = static_cast<uint32_t>(t.col[kSamples][i]);
    b.availability =
        static_cast<double>(t.col[kAvailability][i]) / static_cast<double>(kAvailabilityScale);
    b.mean_kw = static_cast<double>(mean) / kPowerScale;
    b.max_kw = static_cast<double>(max) / kPowerScale;
    b.min_kw = static_cast<double>(min) / kPowerScale;
    b.export_kwh = static_cast<double>(t.col[kExport][i]) / kEnergyScale;
    b.import_kwh = static_cast<double>(t.col[kImport][i]) / kEnergyScale;
    b.capacity_kw = static_cast<double>(t.col[kCapacity][i]) / kPowerScale;
  }
  for (size_t j = 0; j < t.soc_rows.size(); ++j) {
    out[t.soc_rows[j]].soc_pct = static_cast<double>(t.col[kSoc][j]) / kSocScale;
  }
  return out;
}

}  // namespace derms::history
