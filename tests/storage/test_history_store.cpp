// The history jobs against real SQLite files: rollups, late samples, sealing,
// retention and slots, each checked against a recomputation from the raw
// samples stored.
#include <sqlite3.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <random>

#include "cloud_aggregator/history/slots.h"
#include "cloud_aggregator/storage/history_jobs.h"
#include "cloud_aggregator/storage/rollup_reader.h"
#include "cloud_aggregator/storage/store.h"

namespace fs = std::filesystem;
namespace history = derms::history;
using derms::storage::HistoryJobs;
using derms::storage::HistoryOptions;
using derms::storage::Store;

namespace {

constexpr int64_t kT0 = 1767225600000;  // 2026-01-01T00:00:00Z
constexpr int64_t kMin = 60000;
constexpr int64_t kDayMs = 86400000;

struct TempDir {
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() /
           ("derms-history-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

struct Der {
  std::string id;
  int interval_s;
  double max_discharge_kw;
  bool storage;
};

derms::v1::DerBirth Birth(const Der& d) {
  derms::v1::DerBirth b;
  b.set_der_id(d.id);
  b.set_bd_seq(1);
  b.set_der_type(d.storage ? derms::v1::BATTERY : derms::v1::PV);
  b.set_max_discharge_kw(d.max_discharge_kw);
  b.set_substation_id("sub-1");
  b.set_telemetry_interval_s(d.interval_s);
  b.set_timestamp_ms(kT0);
  return b;
}

struct Raw {
  int64_t t;
  double kw;
  std::optional<double> soc;
  std::optional<double> capacity;
};

// Opens `path` read-write with the rollups table, for checks.
struct Db {
  explicit Db(const std::string& path) {
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(derms::storage::RegisterRollups(db).ok());
  }
  ~Db() { sqlite3_close(db); }
  int64_t Count(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
  }
  // (kind, id, resolution) -> buckets, read through the virtual table.
  std::map<int64_t, history::Bucket> Rollups(const std::string& res, const std::string& kind,
                                             const std::string& id) {
    std::map<int64_t, history::Bucket> out;
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db,
                               "SELECT bucket_ms, samples, availability, min_kw, max_kw, "
                               "mean_kw, export_kwh, import_kwh, soc_pct, capacity_kw FROM "
                               "rollups WHERE resolution = ? AND kind = ? AND id = ?",
                               -1, &s, nullptr) == SQLITE_OK);
    sqlite3_bind_text(s, 1, res.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, kind.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, id.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(s) == SQLITE_ROW) {
      history::Bucket b = derms::storage::BucketFromRow(s, 0);
      out[b.start_ms] = b;
    }
    sqlite3_finalize(s);
    return out;
  }
  sqlite3* db = nullptr;
};

// A bucket straight from raw samples by the definitions (rollup.h), for
// any resolution: coarse availability and capacity are means over its
// 5-minute slots.
history::Bucket Recompute(const std::vector<Raw>& raw, const Der& d, int64_t start, int64_t res_s) {
  history::Bucket b;
  b.start_ms = start;
  std::map<int64_t, std::vector<const Raw*>> slots;
  for (const auto& r : raw) {
    if (r.t >= start && r.t < start + res_s * 1000)
      slots[history::BucketStart(r.t, 300)].push_back(&r);
  }
  double sum = 0, soc = 0, availability = 0, capacity = 0;
  int soc_n = 0;
  bool first = true;
  for (const auto& [slot, in] : slots) {
    double w = std::min<double>(d.interval_s, 300.0 / in.size());
    availability += in.size() * w / 300;
    for (const Raw* r : in) {
      b.min_kw = first ? r->kw : std::min(b.min_kw, r->kw);
      b.max_kw = first ? r->kw : std::max(b.max_kw, r->kw);
      first = false;
      sum += r->kw;
      b.export_kwh += std::max(0.0, r->kw) * w / 3600;
      b.import_kwh += std::max(0.0, -r->kw) * w / 3600;
      capacity += r->capacity.value_or(d.max_discharge_kw) * w / 300;
      if (r->soc) {
        soc += *r->soc;
        ++soc_n;
      }
      ++b.samples;
    }
  }
  double slots_per_bucket = res_s / 300.0;
  b.mean_kw = b.samples ? sum / b.samples : 0;
  b.availability = availability / slots_per_bucket;
  b.capacity_kw = capacity / slots_per_bucket;
  if (soc_n) b.soc_pct = soc / soc_n;
  return b;
}

void CheckSame(const history::Bucket& got, const history::Bucket& want, const std::string& what) {
  INFO(what << " bucket " << want.start_ms);
  // Sealed buckets are stored to 1 W, 0.1 Wh, 0.01 %, 0.0001.
  auto near = [](double m) { return Approx(0).margin(m); };
  CHECK(got.samples == want.samples);
  CHECK(got.availability - want.availability == near(1e-4));
  CHECK(got.min_kw - want.min_kw == near(1e-3));
  CHECK(got.max_kw - want.max_kw == near(1e-3));
  CHECK(got.mean_kw - want.mean_kw == near(1e-3));
  CHECK(got.export_kwh - want.export_kwh == near(2e-4));
  CHECK(got.import_kwh - want.import_kwh == near(2e-4));
  CHECK(got.capacity_kw - want.capacity_kw == near(2e-3));
  CHECK(got.soc_pct.has_value() == want.soc_pct.has_value());
  if (got.soc_pct && want.soc_pct) CHECK(*got.soc_pct - *want.soc_pct == near(0.01));
}

void AddSample(Store& store, const Der& d, uint64_t seq, const Raw& r) {
  derms::v1::Telemetry t;
  t.set_der_id(d.id);
  t.set_seq(seq);
  t.set_timestamp_ms(r.t);
  t.set_active_power_kw(r.kw);
  if (r.soc) t.set_soc_pct(*r.soc);
  if (r.capacity) t.set_available_discharge_kw(*r.capacity);
  store.Add(derms::storage::TelemetryRecord{t, r.t});
}

}  // namespace

TEST_CASE("rollups of every resolution equal a recomputation from the raw samples", "[history]") {
  TempDir dir;
  const std::string path = (dir.path / "derms.db").string();
  auto opened = Store::Open({path});
  REQUIRE(opened.ok());
  Store& store = *opened.value();
  std::vector<Der> ders = {{"pv-1", 60, 8, false},
                           {"bat-1", 30, 5, true},
                           {"bat-2", 10, 12, true},
                           {"pv-2", 60, 4, false}};
  for (const auto& d : ders) store.Add(derms::storage::BirthRecord{Birth(d), kT0});
  store.Add(derms::storage::VderMembersRecord{
      {{"all", {"pv-1", "bat-1", "bat-2", "pv-2"}}, {"batteries", {"bat-1", "bat-2"}}}});

  HistoryOptions options;
  options.interval_s = 0;  // passes are run by the test
  options.raw_days = 0;
  options.seal_after_s = 3600;
  auto jobs = HistoryJobs::Start(&store, options, [] { return int64_t{0}; });
  REQUIRE(jobs.ok());

  std::mt19937 rng(42);
  std::uniform_real_distribution<double> kw(-10, 10), u(0, 1);
  std::map<std::string, std::vector<Raw>> raw;
  std::map<std::string, uint64_t> seq;
  std::vector<std::pair<const Der*, Raw>> held_back;  // arrive late
  // Two and a half days, passes every 20 minutes, 3 % of samples late.
  const int64_t end = kT0 + 2 * kDayMs + 12 * 3600000;
  for (int64_t now = kT0; now < end; now += 20 * kMin) {
    for (const auto& d : ders) {
      for (int64_t t = now; t < now + 20 * kMin; t += d.interval_s * 1000) {
        if (u(rng) < 0.1) continue;  // a gap
        Raw r{t + static_cast<int64_t>(u(rng) * 500), kw(rng), {}, {}};
        if (d.storage) r.soc = 100 * u(rng);
        if (u(rng) < 0.5) r.capacity = d.max_discharge_kw * u(rng);
        raw[d.id].push_back(r);
        if (u(rng) < 0.03) {
          held_back.emplace_back(&d, r);
        } else {
          AddSample(store, d, ++seq[d.id], r);
        }
      }
    }
    if (u(rng) < 0.3) {
      for (const auto& [d, r] : held_back) AddSample(store, *d, ++seq[d->id], r);
      held_back.clear();
    }
    REQUIRE((*jobs)->RunOnce(now + 20 * kMin + 60000).ok());
  }
  for (const auto& [d, r] : held_back) AddSample(store, *d, ++seq[d->id], r);
  REQUIRE(store.Flush().ok());
  // A day later everything but the last day is sealed.
  REQUIRE((*jobs)->RunOnce(end + kDayMs).ok());
  CHECK((*jobs)->counters().late_buckets > 0);
  CHECK((*jobs)->counters().chunks_sealed > 0);

  Db db(path);
  CHECK(db.Count("SELECT COUNT(*) FROM rollup_chunks WHERE resolution_s = 300") > 0);
  CHECK(db.Count("SELECT COUNT(*) FROM rollup_late") == 0);
  for (const auto& [res_name, res_s] :
       std::vector<std::pair<std::string, int64_t>>{{"5m", 300}, {"1h", 3600}, {"1d", 86400}}) {
    std::map<int64_t, history::Bucket> all_sum, battery_sum;
    std::map<int64_t, std::vector<history::Bucket>> all_parts, battery_parts;
    for (const auto& d : ders) {
      auto got = db.Rollups(res_name, "der", d.id);
      std::set<int64_t> starts;
      for (const auto& r : raw[d.id]) starts.insert(history::BucketStart(r.t, res_s));
      REQUIRE(got.size() == starts.size());
      for (int64_t start : starts) {
        history::Bucket want = Recompute(raw[d.id], d, start, res_s);
        REQUIRE(got.count(start));
        CheckSame(got[start], want, d.id + " " + res_name);
        all_parts[start].push_back(want);
        if (d.storage) battery_parts[start].push_back(want);
      }
    }
    auto all = db.Rollups(res_name, "vder", "all");
    auto batteries = db.Rollups(res_name, "vder", "batteries");
    REQUIRE(all.size() == all_parts.size());
    for (const auto& [start, parts] : all_parts) {
      CheckSame(all[start], history::SumMembers(parts, start, 4), "vder all " + res_name);
    }
    for (const auto& [start, parts] : battery_parts) {
      CheckSame(batteries[start], history::SumMembers(parts, start, 2),
                "vder batteries " + res_name);
    }
  }
}

TEST_CASE("retention removes only what has expired", "[history]") {
  TempDir dir;
  const std::string path = (dir.path / "derms.db").string();
  auto opened = Store::Open({path});
  REQUIRE(opened.ok());
  Store& store = *opened.value();
  Der d{"pv-1", 60, 5, false};
  store.Add(derms::storage::BirthRecord{Birth(d), kT0});
  HistoryOptions options;
  options.interval_s = 0;
  options.raw_days = 2;
  options.rollup_5m_days = 3;
  auto jobs = HistoryJobs::Start(&store, options, [] { return int64_t{0}; });
  REQUIRE(jobs.ok());
  uint64_t seq = 0;
  const int64_t now = kT0 + 6 * kDayMs + 7 * 3600000;  // day 6, 07:00
  for (int64_t t = kT0; t < now - 10 * kMin; t += kMin) {
    AddSample(store, d, ++seq, Raw{t, 1.0, {}, {}});
  }
  REQUIRE(store.Flush().ok());
  // First pass rolls everything up (a day per pass at most)...
  for (int i = 0; i < 8; ++i) REQUIRE((*jobs)->RunOnce(now).ok());
  Db db(path);
  // ...and then raw older than two days is gone, to the sample.
  const int64_t raw_cutoff = now - 2 * kDayMs;
  CHECK(db.Count("SELECT COUNT(*) FROM telemetry WHERE timestamp_ms < " +
                 std::to_string(raw_cutoff)) == 0);
  CHECK(db.Count("SELECT COUNT(*) FROM telemetry") == (now - 10 * kMin - raw_cutoff) / kMin);
  // 5-minute rollups: whole days older than three days are gone; the day
  // holding the cutoff stays whole.
  const int64_t chunk_cutoff = history::BucketStart(now - 3 * kDayMs, 86400);
  CHECK(db.Count("SELECT COUNT(*) FROM rollups WHERE resolution = '5m' AND id = 'pv-1' AND "
                 "bucket_ms < " +
                 std::to_string(chunk_cutoff)) == 0);
  CHECK(db.Count("SELECT MIN(bucket_ms) FROM rollups WHERE resolution = '5m' AND id = 'pv-1'") ==
        chunk_cutoff);
  CHECK(db.Count("SELECT COUNT(*) FROM rollups WHERE resolution = '5m' AND id = 'pv-1'") ==
        (now - 10 * kMin - chunk_cutoff) / 300000);
  // Hourly and daily rollups are kept (0 = forever), from the first day on.
  CHECK(db.Count("SELECT MIN(bucket_ms) FROM rollups WHERE resolution = '1h' AND id = 'pv-1'") ==
        kT0);
  CHECK(db.Count("SELECT COUNT(*) FROM rollups WHERE resolution = '1d' AND id = 'pv-1'") == 7);
  CHECK(store.counters().expired > 0);
}

TEST_CASE("slots agree with a brute-force scan of the raw samples", "[history][slots]") {
  TempDir dir;
  const std::string path = (dir.path / "derms.db").string();
  auto opened = Store::Open({path});
  REQUIRE(opened.ok());
  Store& store = *opened.value();
  std::vector<Der> ders;
  for (int i = 0; i < 12; ++i) ders.push_back({"b-" + std::to_string(i), 60, 20, true});
  std::vector<std::string> ids;
  for (const auto& d : ders) {
    store.Add(derms::storage::BirthRecord{Birth(d), kT0});
    ids.push_back(d.id);
  }
  store.Add(derms::storage::VderMembersRecord{{{"fleet", ids}}});
  HistoryOptions options;
  options.interval_s = 0;
  options.raw_days = 0;
  auto jobs = HistoryJobs::Start(&store, options, [] { return int64_t{0}; });
  REQUIRE(jobs.ok());
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::map<int64_t, double> capacity;  // 5-minute bucket -> sum over DERs
  uint64_t seq = 0;
  const int64_t end = kT0 + 2 * kDayMs;
  for (const auto& d : ders) {
    for (int64_t t = kT0; t < end; t += kMin) {
      if (u(rng) < 0.15) continue;
      // Capacity swings over the day, so slots come and go.
      double cap = 20 * u(rng) * (0.5 + 0.5 * std::sin((t - kT0) / 3.6e6));
      AddSample(store, d, ++seq, Raw{t, 0, 50.0, cap});
      capacity[history::BucketStart(t, 300)] += cap * 60 / 300;
    }
  }
  REQUIRE(store.Flush().ok());
  for (int i = 0; i < 3; ++i) REQUIRE((*jobs)->RunOnce(end + kDayMs).ok());
  for (double threshold : {30.0, 60.0, 90.0}) {
    auto buckets = derms::storage::ReadSeries(path, 300, "vder", "fleet", kT0, end);
    REQUIRE(buckets.ok());
    auto slots = history::FindSlots(*buckets, 300, threshold);
    // Brute force: every bucket at or above the threshold is in exactly one
    // slot, and every slot bucket is at or above it.
    std::vector<std::pair<int64_t, int64_t>> want;
    for (const auto& [start, cap] : capacity) {
      if (cap + 1e-3 < threshold) continue;
      if (cap - 1e-3 < threshold) continue;  // too close to call after quantization
      want.emplace_back(start, start + 300000);
    }
    for (const auto& [start, stop] : want) {
      int holders = 0;
      for (const auto& s : slots) holders += s.start_ms <= start && stop <= s.end_ms;
      INFO("threshold " << threshold << " bucket " << start);
      CHECK(holders == 1);
    }
    for (const auto& s : slots) {
      for (int64_t b = s.start_ms; b < s.end_ms; b += 300000) {
        INFO("threshold " << threshold << " slot bucket " << b);
        CHECK(capacity[b] + 1e-3 >= threshold);
      }
    }
    CHECK(slots.empty() == want.empty());
  }
  auto missing = derms::storage::ReadSeries(path, 300, "vder", "nope", kT0, end);
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("no rollups of vder 'nope'"));
}
