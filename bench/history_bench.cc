#include "bench/history_bench.h"

#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "cloud_aggregator/history/chunk_codec.h"
#include "cloud_aggregator/history/rollup.h"
#include "cloud_aggregator/storage/query.h"
#include "cloud_aggregator/storage/rollup_reader.h"
#include "cloud_aggregator/storage/store.h"
#include "edge_agent/devices/simulated.h"

namespace derms::bench {
namespace {

namespace fs = std::filesystem;
namespace history = derms::history;
namespace storage = derms::storage;
namespace v1 = derms::v1;
using Clock = std::chrono::steady_clock;

constexpr int64_t kMinuteMs = 60000;
constexpr int64_t kDayMs = 86400000;
// Rows per transaction of the floor, as Store's batch_max.
constexpr size_t kFloorBatch = 5000;
// Chunks, and open rollup rows, per HistoryWriteRecord (as the history jobs
// seal: kSealSlice).
constexpr size_t kChunksPerWrite = 200;
constexpr size_t kOpenRowsPerWrite = 5000;
// Five years of 5-minute buckets for 1,000 DERs.
constexpr double kFiveYearBuckets = 5.0 * 365 * 288 * 1000;
constexpr double kGoalBytes = 5e9;

[[noreturn]] void Die(const std::string& what) {
  fmt::print(stderr, "derms-bench: {}\n", what);
  std::exit(1);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Spread {
  double median = 0, min = 0, max = 0;
};
Spread Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.front(), v.back()};
}
std::string Json(const std::string& key, const Spread& s, int decimals = 1) {
  return fmt::format("\"{0}\": {1:.{4}f}, \"{0}_min\": {2:.{4}f}, \"{0}_max\": {3:.{4}f}", key,
                     s.median, s.min, s.max, decimals);
}

// CPU seconds of the whole process, user + system.
double ProcessCpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
double ThreadCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int64_t FileBytes(const std::string& path) {
  std::error_code ec;
  auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

void RemoveDb(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix, ec);
}

// The dirty pages of the previous run written out, so that writeback does
// not land in the next timed run.
void SettleDisk() { ::sync(); }

// What-ifs applied to every connection the process opens (the Store's, the
// floor's, the readers'), through an SQLite auto-extension. Set once, before
// any connection opens (HistoryBenches::Run).
std::string* extra_pragmas = nullptr;  // never freed: connections open until exit

// A WAL limit the Store could enforce (--wal-limit-mb): the hook SQLite
// calls after every commit, on the committing thread. It does what the
// default hook does (a PASSIVE checkpoint from 1,000 frames on) and, once the
// WAL holds `frames` frames because readers kept those checkpoints from
// finishing, a TRUNCATE checkpoint: it waits (busy timeout) for the readers
// on older snapshots, copies everything back and empties the WAL.
struct WalLimit {
  int frames = 0;  // 0: no hook
  std::atomic<int> truncations{0};
  std::atomic<double> longest_ms{0};
} wal_limit;

int LimitWal(void*, sqlite3* db, const char* name, int frames) {
  if (frames >= wal_limit.frames) {
    auto start = Clock::now();
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    const double ms = Millis(Clock::now() - start);
    if (ms > wal_limit.longest_ms) wal_limit.longest_ms = ms;
    ++wal_limit.truncations;
  } else if (frames >= 1000) {
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  return SQLITE_OK;
}

int InstallWalLimit(void* db) {
  sqlite3_wal_hook(static_cast<sqlite3*>(db), &LimitWal, nullptr);
  return 0;  // go on with the commit
}

int OnConnection(sqlite3* db, const char** error, const struct sqlite3_api_routines*) {
  if (extra_pragmas != nullptr &&
      sqlite3_exec(db, extra_pragmas->c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    *error = "derms-bench: --sqlite-pragmas failed";
    return SQLITE_ERROR;
  }
  // SQLite installs its default WAL hook after the auto-extensions run
  // (sqlite3_wal_autocheckpoint in openDatabase): ours goes in at each
  // commit, before the WAL hook is called.
  if (wal_limit.frames > 0) sqlite3_commit_hook(db, &InstallWalLimit, db);
  return SQLITE_OK;
}

void ApplyToEveryConnection(const std::string& pragmas, int64_t wal_limit_mb) {
  if (pragmas.empty() && wal_limit_mb <= 0) return;
  if (!pragmas.empty()) extra_pragmas = new std::string(pragmas);
  // In 4 KiB pages, the Store's page size.
  if (wal_limit_mb > 0) wal_limit.frames = static_cast<int>(wal_limit_mb * 1000000 / 4096);
  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(&OnConnection));
}

// ---- A bare SQLite connection for the floor and for measuring ----

class Db {
 public:
  explicit Db(const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      Die(fmt::format("database '{}': {}", path, sqlite3_errmsg(db_)));
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* get() const { return db_; }
  void Exec(const std::string& sql) const {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string what = err ? err : "?";
      sqlite3_free(err);
      Die(fmt::format("'{}': {}", sql, what));
    }
  }
  // The first column of the first row; nullopt if the statement fails (a
  // missing dbstat, say) or has no row.
  std::optional<int64_t> Int(const std::string& sql) const {
    sqlite3_stmt* stmt = nullptr;
    std::optional<int64_t> out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      out = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Creates (or upgrades) the database at `path` with the Store's schema and
// closes it again, so that only the caller writes to it afterwards.
void CreateSchema(const std::string& path) {
  storage::StoreOptions o;
  o.path = path;
  auto store = storage::Store::Open(o);
  if (!store.ok()) Die(store.status().ToString());
}

std::unique_ptr<storage::Store> OpenStore(const std::string& path) {
  storage::StoreOptions o;
  o.path = path;
  auto store = storage::Store::Open(o);
  if (!store.ok()) Die(store.status().ToString());
  return std::move(store).value();
}

// Bytes the database file takes, everything checkpointed into it: as it
// grew, then after VACUUM (every page full, no free pages).
struct DbSize {
  int64_t grown = 0;
  int64_t vacuumed = 0;
};
DbSize MeasureSize(const std::string& path) {
  Db db(path);
  db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  DbSize s;
  s.grown = FileBytes(path);
  db.Exec("VACUUM");
  db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  s.vacuumed = FileBytes(path);
  return s;
}

// ---- A simulated fleet's telemetry ----

struct FleetOptions {
  int ders = 1000;
  double noise = 0.01;           // meter noise, sigma as a share of the rating
  double missing = 0.02;         // samples lost at random
  double outages_per_day = 0.1;  // per DER; each lasts 5 to 120 minutes
  uint64_t seed = 42;
};

struct SimDer {
  std::string id;
  edge::Nameplate nameplate;
  std::unique_ptr<edge::Device> device;
  std::mt19937_64 rng;
  int64_t phase_ms = 0;  // when in each minute it reports
  uint64_t seq = 0;
  int64_t outage_until_ms = 0;
  // Batteries: charge around midday, discharge in the evening peak (solar hours).
  double charge_from_h = 0, discharge_from_h = 0;
};

// 1,000 DERs by default, 35 % PV, 25 % batteries, 15 % EV chargers, 15 %
// flexible loads, 10 % wind, each driven by its edge_agent simulation and
// reporting once a minute, as an edge agent would, with meter noise, lost
// samples and outages. Deterministic for a seed.
class SimFleet {
 public:
  SimFleet(const FleetOptions& o, int64_t start_ms) : options_(o), minute_ms_(start_ms) {
    std::mt19937_64 rng(o.seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int i = 0; i < o.ders; ++i) {
      SimDer d;
      edge::Nameplate& n = d.nameplate;
      const int slot = i % 20;
      const char* prefix = "pv";
      if (slot < 7) {
        n.type = v1::PV;
        n.max_discharge_kw = 3 + 7 * u(rng);
      } else if (slot < 12) {
        n.type = v1::BATTERY;
        prefix = "bat";
        n.max_discharge_kw = n.max_charge_kw = 5 + 5 * u(rng);
        n.energy_capacity_kwh = 10 + 10 * u(rng);
      } else if (slot < 15) {
        n.type = v1::EV_CHARGER;
        prefix = "ev";
        n.max_charge_kw = u(rng) < 0.5 ? 7.4 : 11;
        n.energy_capacity_kwh = 40 + 40 * u(rng);
      } else if (slot < 18) {
        n.type = v1::FLEXIBLE_LOAD;
        prefix = "load";
        n.max_charge_kw = 2 + 6 * u(rng);
      } else {
        n.type = v1::WIND;
        prefix = "wind";
        n.max_discharge_kw = 5 + 15 * u(rng);
      }
      n.latitude = 37 + u(rng);
      n.longitude = -123 + 3 * u(rng);
      d.id = fmt::format("{}-{:06d}", prefix, i);
      d.device = edge::MakeSimulatedDevice(n, o.seed * 7919 + i, start_ms);
      if (!d.device) Die(fmt::format("no simulated device for '{}'", d.id));
      d.rng.seed(o.seed * 104729 + i);
      d.phase_ms = static_cast<int64_t>(u(rng) * kMinuteMs);
      d.charge_from_h = 9.5 + u(rng);
      d.discharge_from_h = 16.5 + 1.5 * u(rng);
      ders_.push_back(std::move(d));
    }
  }

  size_t size() const { return ders_.size(); }
  const SimDer& der(size_t i) const { return ders_[i]; }
  int64_t minute_ms() const { return minute_ms_; }

  // Brings every DER through the next minute, each stepped to its own report
  // time in it; `emit(der index, telemetry)` for each sample not lost.
  template <typename F>
  void NextMinute(F&& emit) {
    for (size_t i = 0; i < ders_.size(); ++i) {
      SimDer& d = ders_[i];
      const int64_t t_ms = minute_ms_ + d.phase_ms;
      d.device->Step(t_ms, Setpoint(d, t_ms));
      std::uniform_real_distribution<double> u(0.0, 1.0);
      if (t_ms < d.outage_until_ms) continue;
      if (u(d.rng) < options_.outages_per_day / 1440.0) {
        d.outage_until_ms = t_ms + static_cast<int64_t>((5 + 115 * u(d.rng)) * kMinuteMs);
        continue;
      }
      ++d.seq;  // a lost message still used its sequence number
      if (u(d.rng) < options_.missing) continue;
      emit(i, Read(d, t_ms));
    }
    minute_ms_ += kMinuteMs;
  }

 private:
  static std::optional<double> Setpoint(const SimDer& d, int64_t t_ms) {
    if (d.nameplate.type != v1::BATTERY) return std::nullopt;
    const double h = edge::SolarHour(t_ms, d.nameplate.longitude);
    if (h >= d.charge_from_h && h < d.charge_from_h + 4) return -0.5 * d.nameplate.max_charge_kw;
    if (h >= d.discharge_from_h && h < d.discharge_from_h + 4) {
      return 0.6 * d.nameplate.max_discharge_kw;
    }
    return std::nullopt;
  }

  v1::Telemetry Read(SimDer& d, int64_t t_ms) {
    const edge::Reading r = d.device->Read();
    const edge::PowerRange range = d.device->Range();
    const double rating = std::max(d.nameplate.max_discharge_kw, d.nameplate.max_charge_kw);
    double p = r.active_power_kw;
    if (p != 0 && options_.noise > 0) {
      // Noise never flips the sign: an idle inverter reads zero, a load never exports.
      std::normal_distribution<double> n(0.0, options_.noise * rating);
      const double noisy = p + n(d.rng);
      p = p > 0 ? std::max(0.0, noisy) : std::min(0.0, noisy);
    }
    p = std::round(p * 1000) / 1000;  // the meter's resolution: 1 W
    v1::Telemetry t;
    t.set_der_id(d.id);
    t.set_seq(d.seq);
    t.set_timestamp_ms(t_ms);
    t.set_active_power_kw(p);
    t.set_reactive_power_kvar(std::round(r.reactive_power_kvar * 1000) / 1000);
    if (r.soc_pct) t.set_soc_pct(std::round(*r.soc_pct * 100) / 100);
    t.set_voltage_v(std::round(r.voltage_v * 10) / 10);
    t.set_frequency_hz(std::round(r.frequency_hz * 1000) / 1000);
    if (auto sp = Setpoint(d, t_ms)) t.set_setpoint_kw(*sp);
    t.set_run_time_s(std::round(r.run_time_s));
    for (const auto& a : r.alarms) *t.add_alarms() = a;
    t.set_available_discharge_kw(std::round(std::max(0.0, range.max_kw) * 1000) / 1000);
    t.set_available_charge_kw(std::round(std::max(0.0, -range.min_kw) * 1000) / 1000);
    t.set_baseline_kw(std::round(d.device->BaselineKw() * 1000) / 1000);
    return t;
  }

  const FleetOptions options_;
  int64_t minute_ms_;
  std::vector<SimDer> ders_;
};

// A start time on a chunk boundary of every resolution (a daily chunk is 288
// days, an hourly one 12, a 5-minute one 1), in 2024.
int64_t AlignedStartMs() { return history::ChunkStart(1'720'000'000'000, history::kDay); }

storage::TelemetryRecord Received(v1::Telemetry t, std::mt19937_64& rng) {
  const int64_t ts = t.timestamp_ms();
  return {std::move(t), ts + 50 + static_cast<int64_t>(rng() % 250)};
}

// The next `n` samples of the fleet, time-major as they would arrive.
std::vector<storage::TelemetryRecord> TakeRecords(SimFleet& fleet, uint64_t n,
                                                  std::mt19937_64& rng) {
  std::vector<storage::TelemetryRecord> out;
  out.reserve(n);
  while (out.size() < n) {
    fleet.NextMinute([&](size_t, v1::Telemetry t) {
      if (out.size() < n) out.push_back(Received(std::move(t), rng));
    });
  }
  return out;
}

// ---- The floor: one prepared INSERT, batched, nothing else ----

// Writes telemetry rows into a database already holding the Store's schema,
// binding the same values the Store's writer binds, `batch` rows per
// transaction, with the Store's pragmas.
class BareInserter {
 public:
  // `setup` runs after the Store's pragmas (the prefill, untimed, goes faster with more cache).
  BareInserter(const std::string& path, size_t batch, const std::string& setup = "")
      : db_(path), batch_(batch) {
    // The same per-connection settings as store.cc's schema.
    db_.Exec(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; "
        "PRAGMA journal_size_limit = 67108864");
    if (!setup.empty()) db_.Exec(setup);
    if (sqlite3_prepare_v3(db_.get(),
                           "INSERT OR IGNORE INTO telemetry VALUES "
                           "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, SQLITE_PREPARE_PERSISTENT, &insert_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v3(db_.get(), "BEGIN", -1, SQLITE_PREPARE_PERSISTENT, &begin_, nullptr) !=
            SQLITE_OK ||
        sqlite3_prepare_v3(db_.get(), "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &commit_, nullptr) !=
            SQLITE_OK) {
      Die(fmt::format("floor: {}", sqlite3_errmsg(db_.get())));
    }
  }
  ~BareInserter() {
    Finish();
    sqlite3_finalize(insert_);
    sqlite3_finalize(begin_);
    sqlite3_finalize(commit_);
  }

  void Insert(const storage::TelemetryRecord& r) {
    if (in_transaction_ == 0) Step(begin_);
    const v1::Telemetry& t = r.telemetry;
    alarms_.clear();
    for (const auto& a : t.alarms()) {
      if (!alarms_.empty()) alarms_ += ',';
      alarms_ += a.code() + ":" + v1::Severity_Name(a.severity());
    }
    sqlite3_stmt* q = insert_;
    auto text = [q](int i, const std::string& s) {
      sqlite3_bind_text(q, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
    };
    auto real_or_null = [q](int i, bool has, double v) {
      has ? sqlite3_bind_double(q, i, v) : sqlite3_bind_null(q, i);
    };
    text(1, t.der_id());
    sqlite3_bind_int64(q, 2, static_cast<int64_t>(t.seq()));
    sqlite3_bind_int64(q, 3, t.timestamp_ms());
    sqlite3_bind_int64(q, 4, r.received_ms);
    sqlite3_bind_double(q, 5, t.active_power_kw());
    sqlite3_bind_double(q, 6, t.reactive_power_kvar());
    real_or_null(7, t.has_soc_pct(), t.soc_pct());
    sqlite3_bind_double(q, 8, t.voltage_v());
    sqlite3_bind_double(q, 9, t.frequency_hz());
    real_or_null(10, t.has_setpoint_kw(), t.setpoint_kw());
    sqlite3_bind_double(q, 11, t.run_time_s());
    real_or_null(12, t.has_available_discharge_kw(), t.available_discharge_kw());
    real_or_null(13, t.has_available_charge_kw(), t.available_charge_kw());
    real_or_null(14, t.has_baseline_kw(), t.baseline_kw());
    text(15, t.command_id());
    text(16, alarms_);
    sqlite3_bind_int64(q, 17, t.is_historical());
    Step(q);
    if (++in_transaction_ == batch_) Finish();
  }

  // Commits the open transaction, if any.
  void Finish() {
    if (in_transaction_ == 0) return;
    Step(commit_);
    in_transaction_ = 0;
  }

 private:
  void Step(sqlite3_stmt* stmt) {
    if (sqlite3_step(stmt) != SQLITE_DONE) Die(fmt::format("floor: {}", sqlite3_errmsg(db_.get())));
    sqlite3_reset(stmt);
  }

  Db db_;
  const size_t batch_;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  size_t in_transaction_ = 0;
  std::string alarms_;
};

int64_t TelemetryRows(const std::string& path) {
  Db db(path, SQLITE_OPEN_READONLY);
  return db.Int("SELECT COUNT(*) FROM telemetry").value_or(-1);
}

// The floor's seconds for `records` into a fresh database at `path`.
double FloorRun(const std::string& path, const std::vector<storage::TelemetryRecord>& records) {
  RemoveDb(path);
  CreateSchema(path);
  SettleDisk();
  double secs = 0;
  {
    BareInserter floor(path, kFloorBatch);
    auto start = Clock::now();
    for (const auto& r : records) floor.Insert(r);
    floor.Finish();
    secs = Seconds(Clock::now() - start);
  }
  if (TelemetryRows(path) != static_cast<int64_t>(records.size())) {
    Die(fmt::format("floor: {} rows stored of {}", TelemetryRows(path), records.size()));
  }
  return secs;
}

// ---- Ours: Store::Add, then Flush ----

struct IngestRun {
  double seconds = 0;      // first Add to Flush returning
  double add_seconds = 0;  // first Add to last Add returning
  uint64_t transactions = 0;
  double longest_commit_gap_ms = 0;  // most time between two commits (monitored runs)
  int64_t wal_max_bytes = 0;         // largest -wal file seen (monitored runs)
  double cpu_seconds = 0;            // the whole process's, over the run
  int checkpoints = 0;               // TRUNCATE checkpoints by the WAL limit (--wal-limit-mb)
  double longest_checkpoint_ms = 0;  // the longest of them
  double close_seconds = 0;          // closing the Store after the run: its final checkpoint
};

// Watches a Store from a thread of its own, polling every millisecond: the
// longest time between two commits while it runs, and the largest WAL file.
class CommitMonitor {
 public:
  CommitMonitor(const storage::Store& store, std::string wal_path)
      : store_(store), wal_path_(std::move(wal_path)), thread_([this] { Loop(); }) {}
  ~CommitMonitor() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  double longest_gap_ms() const { return longest_gap_ms_; }
  int64_t wal_max_bytes() const { return wal_max_bytes_; }

 private:
  void Loop() {
    uint64_t seen = store_.counters().transactions;
    std::optional<Clock::time_point> last;
    for (int tick = 0; !stop_; ++tick) {
      uint64_t now_seen = store_.counters().transactions;
      auto now = Clock::now();
      if (now_seen != seen) {
        if (last) longest_gap_ms_ = std::max(longest_gap_ms_, Millis(now - *last));
        last = now;
        seen = now_seen;
      }
      if (tick % 10 == 0) wal_max_bytes_ = std::max(wal_max_bytes_, FileBytes(wal_path_));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    wal_max_bytes_ = std::max(wal_max_bytes_, FileBytes(wal_path_));
  }

  const storage::Store& store_;
  const std::string wal_path_;
  std::atomic<bool> stop_{false};
  double longest_gap_ms_ = 0;
  int64_t wal_max_bytes_ = 0;
  std::thread thread_;  // last: starts once the rest is set
};

// Ingests `records` (moved in: copied by the caller before the clock starts)
// through a Store on the database at `path`, which must exist or be
// creatable. `before_start` runs just before the clock starts, `after_flush`
// just after it stops; then the Store is closed (its last checkpoint timed).
// `monitor`: watch the commits (CommitMonitor).
IngestRun StoreRun(const std::string& path, std::vector<storage::TelemetryRecord> records,
                   bool monitor, const std::function<void()>& before_start = {},
                   const std::function<void()>& after_flush = {}) {
  auto store = OpenStore(path);
  const uint64_t committed_before = store->counters().committed;
  const uint64_t tx_before = store->counters().transactions;
  std::unique_ptr<CommitMonitor> watch;
  if (monitor) watch = std::make_unique<CommitMonitor>(*store, path + "-wal");
  const int truncations_before = wal_limit.truncations;
  if (before_start) before_start();
  IngestRun run;
  const double cpu_before = ProcessCpuSeconds();
  const size_t n = records.size();
  auto start = Clock::now();
  for (auto& r : records) store->Add(std::move(r));
  auto added = Clock::now();
  if (Status s = store->Flush(); !s.ok()) Die(s.ToString());
  auto end = Clock::now();
  run.cpu_seconds = ProcessCpuSeconds() - cpu_before;
  run.seconds = Seconds(end - start);
  run.add_seconds = Seconds(added - start);
  run.transactions = store->counters().transactions - tx_before;
  if (after_flush) after_flush();
  if (watch) {
    watch->Stop();
    run.longest_commit_gap_ms = watch->longest_gap_ms();
    run.wal_max_bytes = watch->wal_max_bytes();
  }
  run.checkpoints = wal_limit.truncations - truncations_before;
  run.longest_checkpoint_ms = wal_limit.longest_ms.exchange(0);
  const uint64_t committed = store->counters().committed - committed_before;
  const uint64_t errors = store->counters().errors;
  // Closing the last connection checkpoints the whole WAL: what a reader
  // had deferred is paid here.
  auto close_start = Clock::now();
  store.reset();
  run.close_seconds = Seconds(Clock::now() - close_start);
  if (committed != n || errors != 0) {
    Die(fmt::format("store: {} rows committed of {}, {} errors", committed, n, errors));
  }
  records.clear();
  records.shrink_to_fit();
  return run;
}

// ---- Rollups of the simulated fleet ----

// Each DER's samples rolled into 5-minute buckets as they come (in time
// order per DER), and those combined into hourly and daily buckets.
class FleetRollups {
 public:
  FleetRollups(size_t ders, double interval_s)
      : interval_s_(interval_s), open_(ders), five_min_(ders) {}

  void Add(size_t der, const v1::Telemetry& t) {
    history::Sample s;
    s.timestamp_ms = t.timestamp_ms();
    s.active_power_kw = t.active_power_kw();
    if (t.has_soc_pct()) s.soc_pct = t.soc_pct();
    s.available_discharge_kw = t.available_discharge_kw();
    Open& o = open_[der];
    const int64_t bucket_ms = history::BucketStart(s.timestamp_ms, history::k5Min);
    if (!o.samples.empty() && bucket_ms != o.bucket_ms) Close(der);
    o.bucket_ms = bucket_ms;
    o.samples.push_back(s);
    ++samples_;
  }
  // Closes every DER's last bucket.
  void Finish() {
    for (size_t i = 0; i < open_.size(); ++i) Close(i);
  }
  uint64_t samples() const { return samples_; }
  const std::vector<std::vector<history::Bucket>>& five_min() const { return five_min_; }

  // Every DER's buckets of `resolution_s` from its buckets of `fine_s`.
  static std::vector<std::vector<history::Bucket>> Coarser(
      const std::vector<std::vector<history::Bucket>>& fine, int64_t resolution_s, int64_t fine_s) {
    std::vector<std::vector<history::Bucket>> out(fine.size());
    std::vector<history::Bucket> group;
    for (size_t i = 0; i < fine.size(); ++i) {
      int64_t bucket_ms = 0;
      for (const auto& b : fine[i]) {
        int64_t start = history::BucketStart(b.start_ms, resolution_s);
        if (!group.empty() && start != bucket_ms) {
          out[i].push_back(history::Combine(group, bucket_ms, resolution_s, fine_s));
          group.clear();
        }
        bucket_ms = start;
        group.push_back(b);
      }
      if (!group.empty())
        out[i].push_back(history::Combine(group, bucket_ms, resolution_s, fine_s));
      group.clear();
    }
    return out;
  }

 private:
  struct Open {
    int64_t bucket_ms = 0;
    std::vector<history::Sample> samples;
  };
  void Close(size_t der) {
    Open& o = open_[der];
    if (o.samples.empty()) return;
    five_min_[der].push_back(history::Rollup(o.samples, o.bucket_ms, history::k5Min, interval_s_));
    o.samples.clear();
  }

  const double interval_s_;
  std::vector<Open> open_;
  std::vector<std::vector<history::Bucket>> five_min_;
  uint64_t samples_ = 0;
};

// One resolution's buckets of every DER as the history jobs leave them:
// chunks sealed (those ending by `seal_before_ms`, or all when it is 0), the
// rest open rows.
struct Stored {
  std::vector<storage::ChunkRow> chunks;
  std::vector<storage::RollupRow> open_rows;
  uint64_t buckets = 0;
  uint64_t chunk_bytes = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // type -> (chunk bytes, buckets)
};

Stored SealAll(const SimFleet& fleet, const std::vector<std::vector<history::Bucket>>& per_der,
               int64_t resolution_s, int64_t seal_before_ms) {
  Stored out;
  const int64_t span_ms = resolution_s * 1000 * history::kChunkBuckets;
  std::vector<history::Bucket> chunk;
  auto seal = [&](const std::string& id, const std::string& type) {
    if (chunk.empty()) return;
    const int64_t chunk_ms = history::ChunkStart(chunk.front().start_ms, resolution_s);
    out.buckets += chunk.size();
    if (seal_before_ms > 0 && chunk_ms + span_ms > seal_before_ms) {
      for (const auto& b : chunk) out.open_rows.push_back({resolution_s, "der", id, b});
    } else {
      auto blob = history::EncodeChunk(chunk, resolution_s);
      if (!blob.ok()) Die(fmt::format("'{}' chunk {}: {}", id, chunk_ms, blob.status().ToString()));
      out.chunk_bytes += blob.value().size();
      auto& t = out.by_type[type];
      t.first += blob.value().size();
      t.second += chunk.size();
      out.chunks.push_back({resolution_s, "der", id, chunk_ms, static_cast<int64_t>(chunk.size()),
                            std::move(blob).value()});
    }
    chunk.clear();
  };
  for (size_t i = 0; i < per_der.size(); ++i) {
    const std::string& id = fleet.der(i).id;
    const std::string type = v1::DerType_Name(fleet.der(i).nameplate.type);
    for (const auto& b : per_der[i]) {
      if (!chunk.empty() && history::ChunkStart(b.start_ms, resolution_s) !=
                                history::ChunkStart(chunk.front().start_ms, resolution_s)) {
        seal(id, type);
      }
      chunk.push_back(b);
    }
    seal(id, type);
  }
  return out;
}

// Writes rollups as the history jobs do: through the Store's writer, chunks
// in slices, in the order the jobs would seal them (each once it has ended:
// a day's 5-minute chunks of every DER together, then the next day's), so
// the b-tree grows as it would.
void WriteRollups(storage::Store& store, std::vector<Stored>& all) {
  std::vector<storage::ChunkRow> chunks;
  for (Stored& s : all) {
    std::move(s.chunks.begin(), s.chunks.end(), std::back_inserter(chunks));
    s.chunks.clear();
  }
  auto sealed_at = [](const storage::ChunkRow& c) {
    return c.chunk_ms + c.resolution_s * 1000 * history::kChunkBuckets;
  };
  std::sort(chunks.begin(), chunks.end(), [&](const auto& a, const auto& b) {
    return std::make_tuple(sealed_at(a), a.resolution_s, a.id) <
           std::make_tuple(sealed_at(b), b.resolution_s, b.id);
  });
  storage::HistoryWriteRecord w;
  auto send = [&] {
    store.Add(std::move(w));
    w = {};
  };
  for (auto& c : chunks) {
    w.chunks.push_back(std::move(c));
    if (w.chunks.size() >= kChunksPerWrite) send();
  }
  for (Stored& s : all) {
    for (auto& r : s.open_rows) {
      w.open_rows.push_back(std::move(r));
      if (w.open_rows.size() >= kOpenRowsPerWrite) send();
    }
    s.open_rows.clear();
  }
  if (!w.chunks.empty() || !w.open_rows.empty()) send();
  if (Status s = store.Flush(); !s.ok()) Die(s.ToString());
  if (store.counters().errors != 0) Die("store: errors writing rollups");
}

FleetOptions FleetFrom(const HistoryBenchOptions& o) {
  FleetOptions f;
  f.ders = o.ders;
  f.noise = o.noise;
  f.missing = o.missing;
  return f;
}

// ---- store-insert ----

int StoreInsert(const HistoryBenchOptions& o) {
  fs::create_directories(o.dir);
  const std::string floor_db = o.dir + "/insert-floor.db";
  const std::string ours_db = o.dir + "/insert-store.db";
  SimFleet fleet(FleetFrom(o), AlignedStartMs());
  std::mt19937_64 rng(7);
  const auto records = TakeRecords(fleet, o.records, rng);

  // A small untimed warm-up of each side: the first run pays for cold caches.
  {
    std::vector<storage::TelemetryRecord> warm(
        records.begin(), records.begin() + std::min<size_t>(records.size(), 50000));
    FloorRun(floor_db, warm);
    RemoveDb(ours_db);
    StoreRun(ours_db, warm, false);
  }
  std::vector<double> floor_rate, ours_rate, pair_ratio, add_share;
  uint64_t transactions = 0;
  for (int r = 0; r < o.repeats; ++r) {
    const double floor_s = FloorRun(floor_db, records);
    RemoveDb(ours_db);
    CreateSchema(ours_db);
    std::vector<storage::TelemetryRecord> copy = records;  // before the clock
    SettleDisk();
    const IngestRun ours = StoreRun(ours_db, std::move(copy), false);
    floor_rate.push_back(records.size() / floor_s);
    ours_rate.push_back(records.size() / ours.seconds);
    pair_ratio.push_back(floor_s / ours.seconds);
    add_share.push_back(ours.add_seconds / ours.seconds);
    transactions = ours.transactions;
    fmt::print(stderr, "  store-insert run {}: floor {:.0f} rows/s, store {:.0f} rows/s ({:.3f})\n",
               r + 1, floor_rate.back(), ours_rate.back(), pair_ratio.back());
  }
  if (!o.keep) {
    RemoveDb(floor_db);
    RemoveDb(ours_db);
  }
  const Spread ours = Summarize(ours_rate), floor = Summarize(floor_rate);
  fmt::print(
      "{{\"name\": \"store_insert\", \"records\": {}, \"ders\": {}, \"repeats\": {}, {}, {}, "
      "{}, \"ratio\": {:.3f}, \"store_transactions\": {}, \"store_add_share\": {:.3f}}}\n",
      records.size(), o.ders, o.repeats, Json("ours_rate", ours), Json("floor_rate", floor),
      Json("pair_ratio", Summarize(pair_ratio), 3), ours.median / floor.median, transactions,
      Summarize(add_share).median);
  std::fflush(stdout);
  return 0;
}

// ---- store-insert-under-query ----

// The other side of store-insert-under-query, on a thread of its own until
// stopped. Mode "queries": long analytical queries back to back, each on a
// read-only connection of its own (RunReadOnlyQuery, as `dermsctl query`
// does). "snapshot": a read transaction held open, renewed every 500 ms, no
// work (what the readers do to the WAL, without their CPU). "cpu": a
// spinning thread, no SQLite (their CPU, without touching the WAL).
class QueryLoop {
 public:
  QueryLoop(std::string path, std::string mode)
      : path_(std::move(path)), mode_(std::move(mode)), thread_([this] { Loop(); }) {}
  ~QueryLoop() { Stop(); }

  // Waits until the reader has been at it for a while (or has failed).
  void AwaitRunning() const {
    while (!started_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Lets the query in progress finish, then stops.
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int queries() const { return queries_; }
  double longest_s() const { return longest_s_; }
  double cpu_s() const { return cpu_s_; }
  const std::string& error() const { return error_; }

 private:
  void Loop() {
    static const char* const kQueries[] = {
        "SELECT der_id, COUNT(*), AVG(active_power_kw), MAX(timestamp_ms) FROM telemetry "
        "GROUP BY der_id",
        "SELECT resolution, kind, COUNT(*), AVG(mean_kw), MAX(max_kw), SUM(export_kwh) FROM "
        "rollups GROUP BY resolution, kind",
    };
    storage::QueryOptions q;
    q.db_path = path_;
    q.timeout_ms = 0;
    q.prepare_connection = [](sqlite3* db) { return storage::RegisterRollups(db); };
    const double cpu_start = ThreadCpuSeconds();
    if (mode_ == "cpu") {
      started_ = true;
      while (!stop_) {
      }
    } else if (mode_ == "snapshot") {
      Db db(path_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
      while (!stop_) {
        db.Exec("BEGIN");
        if (!db.Int("SELECT COUNT(*) FROM (SELECT 1 FROM telemetry LIMIT 1)")) {
          error_ = "snapshot read failed";
          break;
        }
        started_ = true;
        ++queries_;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        db.Exec("COMMIT");
      }
    }
    for (int i = 0; mode_ == "queries" && !stop_; ++i) {
      started_ = true;
      auto start = Clock::now();
      auto result = storage::RunReadOnlyQuery(q, kQueries[i % 2]);
      double secs = Seconds(Clock::now() - start);
      if (!result.ok()) {
        error_ = result.status().ToString();
        break;
      }
      ++queries_;
      longest_s_ = std::max(longest_s_, secs);
    }
    cpu_s_ = ThreadCpuSeconds() - cpu_start;
    started_ = true;  // also when it failed before it began
  }

  const std::string path_;
  const std::string mode_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> started_{false};
  int queries_ = 0;
  double longest_s_ = 0, cpu_s_ = 0;
  std::string error_;
  std::thread thread_;  // last: starts once the rest is set
};

void CopyDb(const std::string& from, const std::string& to) {
  RemoveDb(to);
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

int StoreInsertUnderQuery(const HistoryBenchOptions& o) {
  fs::create_directories(o.dir);
  const std::string base_db = o.dir + "/query-base.db";
  const std::string run_db = o.dir + "/query-run.db";
  SimFleet fleet(FleetFrom(o), AlignedStartMs());
  std::mt19937_64 rng(11);

  // The base: `prefill` rows of the fleet's history, and their rollups (the
  // complete days sealed into chunks, the rest open rows).
  auto fill_start = Clock::now();
  RemoveDb(base_db);
  CreateSchema(base_db);
  FleetRollups rollups(fleet.size(), 60);
  {
    BareInserter fill(base_db, 50000, "PRAGMA cache_size = -524288; PRAGMA synchronous = OFF");
    uint64_t n = 0;
    while (n < o.prefill) {
      fleet.NextMinute([&](size_t i, v1::Telemetry t) {
        if (n >= o.prefill) return;
        rollups.Add(i, t);
        fill.Insert(Received(std::move(t), rng));
        ++n;
      });
    }
  }
  rollups.Finish();
  const int64_t end_ms = fleet.minute_ms();
  {
    auto hourly = FleetRollups::Coarser(rollups.five_min(), history::kHour, history::k5Min);
    auto daily = FleetRollups::Coarser(hourly, history::kDay, history::kHour);
    std::vector<Stored> stored;
    stored.push_back(SealAll(fleet, rollups.five_min(), history::k5Min, end_ms));
    stored.push_back(SealAll(fleet, hourly, history::kHour, end_ms));
    stored.push_back(SealAll(fleet, daily, history::kDay, end_ms));
    auto store = OpenStore(base_db);
    WriteRollups(*store, stored);
  }
  {
    Db db(base_db);
    db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  const int64_t base_rows = TelemetryRows(base_db);
  int64_t rollup_rows = 0;
  {
    Db db(base_db, SQLITE_OPEN_READONLY);
    rollup_rows = db.Int(
                        "SELECT (SELECT COUNT(*) FROM rollup_chunks) + "
                        "(SELECT COUNT(*) FROM rollups_open)")
                      .value_or(-1);
  }
  const double fill_s = Seconds(Clock::now() - fill_start);
  const auto records = TakeRecords(fleet, o.query_records, rng);
  fmt::print(stderr,
             "  store-insert-under-query: base of {} rows, {} rollup rows, {} MB in {:.1f} s\n",
             base_rows, rollup_rows, FileBytes(base_db) / 1000000, fill_s);

  // Per side (0: alone, 1: with the reader), one entry per run.
  struct Side {
    std::vector<double> rate, gap_ms, wal_mb, close_s, checkpoints, checkpoint_ms;
  } side[2];
  std::vector<double> pair_ratio, reader_cpu, query_longest;
  int queries = 0;
  for (int r = 0; r < o.repeats; ++r) {
    for (bool with_reader : {false, true}) {
      CopyDb(base_db, run_db);
      std::vector<storage::TelemetryRecord> copy = records;  // before the clock
      SettleDisk();
      std::unique_ptr<QueryLoop> reader;
      IngestRun run = StoreRun(
          run_db, std::move(copy), true,
          [&] {
            if (!with_reader) return;
            reader = std::make_unique<QueryLoop>(run_db, o.reader);
            reader->AwaitRunning();
          },
          [&] {
            if (reader) reader->Stop();
          });
      if (reader) {
        if (!reader->error().empty()) Die("reader: " + reader->error());
        queries += reader->queries();
        reader_cpu.push_back(reader->cpu_s());
        query_longest.push_back(reader->longest_s());
      }
      Side& s = side[with_reader];
      s.rate.push_back(records.size() / run.seconds);
      s.gap_ms.push_back(run.longest_commit_gap_ms);
      s.wal_mb.push_back(run.wal_max_bytes / 1e6);
      s.close_s.push_back(run.close_seconds);
      s.checkpoints.push_back(run.checkpoints);
      s.checkpoint_ms.push_back(run.longest_checkpoint_ms);
      fmt::print(stderr,
                 "  under-query run {} {}: {:.0f} rows/s, longest commit gap {:.1f} ms, WAL up to "
                 "{:.1f} MB ({} truncations, longest {:.1f} ms), close {:.2f} s, "
                 "process CPU {:.2f} s{}\n",
                 r + 1, with_reader ? "with reader" : "alone      ", s.rate.back(),
                 run.longest_commit_gap_ms, run.wal_max_bytes / 1e6, run.checkpoints,
                 run.longest_checkpoint_ms, run.close_seconds, run.cpu_seconds,
                 reader ? fmt::format(", {} queries (longest {:.2f} s, reader CPU {:.2f} s)",
                                      reader->queries(), reader->longest_s(), reader->cpu_s())
                        : "");
    }
    pair_ratio.push_back(side[1].rate.back() / side[0].rate.back());
  }
  if (!o.keep) {
    RemoveDb(run_db);
    RemoveDb(base_db);
  }
  auto fields = [](const char* prefix, const Side& s) {
    return fmt::format("{}, {}, {}, {}, {}, {}",
                       Json(fmt::format("{}_rate", prefix), Summarize(s.rate)),
                       Json(fmt::format("{}_commit_gap_ms", prefix), Summarize(s.gap_ms)),
                       Json(fmt::format("{}_wal_mb", prefix), Summarize(s.wal_mb)),
                       Json(fmt::format("{}_close_s", prefix), Summarize(s.close_s), 3),
                       Json(fmt::format("{}_checkpoints", prefix), Summarize(s.checkpoints), 0),
                       Json(fmt::format("{}_checkpoint_ms", prefix), Summarize(s.checkpoint_ms)));
  };
  fmt::print(
      "{{\"name\": \"store_insert_under_query\", \"reader\": \"{}\", \"wal_limit_mb\": {}, "
      "\"records\": {}, \"prefill_rows\": {}, \"rollup_rows\": {}, \"repeats\": {}, {}, {}, "
      "{}, \"ratio\": {:.3f}, \"queries\": {}, {}, {}}}\n",
      o.reader, o.wal_limit_mb, records.size(), base_rows, rollup_rows, o.repeats,
      fields("busy", side[1]), fields("quiet", side[0]),
      Json("pair_ratio", Summarize(pair_ratio), 3),
      Summarize(side[1].rate).median / Summarize(side[0].rate).median, queries,
      Json("query_longest_s", Summarize(query_longest), 3),
      Json("reader_cpu_s", Summarize(reader_cpu), 2));
  std::fflush(stdout);
  return 0;
}

// ---- history-size ----

int HistorySize(const HistoryBenchOptions& o) {
  fs::create_directories(o.dir);
  const std::string empty_db = o.dir + "/size-empty.db";
  const std::string rollup_db = o.dir + "/size-rollups.db";
  const std::string raw_db = o.dir + "/size-raw.db";
  for (const auto& p : {empty_db, rollup_db, raw_db}) RemoveDb(p);
  CreateSchema(empty_db);
  const int64_t empty_bytes = MeasureSize(empty_db).vacuumed;
  int64_t page_size = 0;
  {
    Db db(empty_db, SQLITE_OPEN_READONLY);
    page_size = db.Int("PRAGMA page_size").value_or(0);
  }
  RemoveDb(empty_db);

  // Simulate, time-major as it would arrive; the first raw_days go through
  // the Store as raw rows too.
  auto sim_start = Clock::now();
  const int64_t start_ms = AlignedStartMs();
  SimFleet fleet(FleetFrom(o), start_ms);
  FleetRollups rollups(fleet.size(), 60);
  std::mt19937_64 rng(13);
  uint64_t raw_rows = 0;
  {
    auto raw = OpenStore(raw_db);
    const int64_t raw_end_ms = start_ms + o.raw_days * kDayMs;
    for (int64_t m = 0; m < static_cast<int64_t>(o.days) * 1440; ++m) {
      const bool keep_raw = fleet.minute_ms() < raw_end_ms;
      fleet.NextMinute([&](size_t i, v1::Telemetry t) {
        rollups.Add(i, t);
        if (keep_raw) {
          raw->Add(Received(std::move(t), rng));
          ++raw_rows;
        }
      });
    }
    rollups.Finish();
    if (Status s = raw->Flush(); !s.ok()) Die(s.ToString());
    if (raw->counters().committed != raw_rows || raw->counters().errors != 0) {
      Die(fmt::format("raw: {} rows committed of {}", raw->counters().committed.load(), raw_rows));
    }
  }
  const double sim_s = Seconds(Clock::now() - sim_start);

  auto encode_start = Clock::now();
  auto hourly = FleetRollups::Coarser(rollups.five_min(), history::kHour, history::k5Min);
  auto daily = FleetRollups::Coarser(hourly, history::kDay, history::kHour);
  // Five years in, everything but the newest chunk of each series is sealed:
  // all of it is sealed here.
  std::vector<Stored> stored;
  stored.push_back(SealAll(fleet, rollups.five_min(), history::k5Min, 0));
  stored.push_back(SealAll(fleet, hourly, history::kHour, 0));
  stored.push_back(SealAll(fleet, daily, history::kDay, 0));
  const double encode_s = Seconds(Clock::now() - encode_start);
  const uint64_t buckets_5m = stored[0].buckets;
  uint64_t chunk_bytes = 0, chunks = 0;
  for (const auto& s : stored) {
    chunk_bytes += s.chunk_bytes;
    chunks += s.chunks.size();
  }
  const std::vector<uint64_t> res_chunk_bytes = {stored[0].chunk_bytes, stored[1].chunk_bytes,
                                                 stored[2].chunk_bytes};
  const std::vector<uint64_t> res_buckets = {stored[0].buckets, stored[1].buckets,
                                             stored[2].buckets};
  // Each type's 5-minute chunks, bytes per bucket.
  std::string by_type;
  for (const auto& [type, bytes_buckets] : stored[0].by_type) {
    by_type += fmt::format("{}\"{}\": {:.3f}", by_type.empty() ? "" : ", ", type,
                           static_cast<double>(bytes_buckets.first) / bytes_buckets.second);
  }
  {
    auto store = OpenStore(rollup_db);
    WriteRollups(*store, stored);
  }
  // A row of an index b-tree (WITHOUT ROWID) page keeps at most
  // (page_size - 12) * 64 / 255 - 23 bytes of payload on it (1,002 with 4 KiB
  // pages); a chunk beyond that spills to an overflow page of its own.
  std::optional<int64_t> overflow_bytes, chunk_table_bytes;
  {
    Db db(rollup_db, SQLITE_OPEN_READONLY);
    chunk_table_bytes = db.Int("SELECT SUM(pgsize) FROM dbstat WHERE name = 'rollup_chunks'");
    overflow_bytes = db.Int(
        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = 'rollup_chunks' AND "
        "pagetype = 'overflow'");
  }
  const DbSize rollup_size = MeasureSize(rollup_db);
  const DbSize raw_size = MeasureSize(raw_db);
  if (!o.keep) {
    RemoveDb(rollup_db);
    RemoveDb(raw_db);
  }

  const uint64_t slots = static_cast<uint64_t>(o.days) * 288 * fleet.size();
  const uint64_t possible = static_cast<uint64_t>(o.days) * 1440 * fleet.size();
  // The database as it grew is the figure: rows went in as they would
  // (raw rows time-major, chunks in sealing order) and nobody VACUUMs a live
  // aggregator. After VACUUM, every page full: the floor.
  auto per = [&](int64_t bytes, uint64_t n) {
    return static_cast<double>(bytes - empty_bytes) / n;
  };
  const double per_bucket = per(rollup_size.grown, buckets_5m);
  const double per_bucket_vacuumed = per(rollup_size.vacuumed, buckets_5m);
  const double projected = per_bucket * kFiveYearBuckets;
  const double raw_per_sample = per(raw_size.grown, raw_rows);
  const double raw_per_sample_vacuumed = per(raw_size.vacuumed, raw_rows);
  // The README's raw window: 90 days of 1,000 DERs at one sample a minute.
  const double raw_90d = 90.0 * 1440 * 1000;
  fmt::print(
      "{{\"name\": \"history_size\", \"ders\": {}, \"days\": {}, \"noise\": {}, "
      "\"missing\": {}, \"samples\": {}, \"samples_missing_share\": {:.4f}, "
      "\"buckets_5m\": {}, \"slots_5m\": {}, \"buckets_1h\": {}, \"buckets_1d\": {}, "
      "\"chunks\": {}, \"chunk_overflow_pages\": {}, \"page_size\": {}, "
      "\"chunk_bytes_5m\": {}, \"chunk_bytes_1h\": {}, \"chunk_bytes_1d\": {}, "
      "\"chunk_bytes_per_5m_bucket\": {:.3f}, \"blob_bytes_per_5m_bucket_5m_only\": {:.3f}, "
      "\"blob_bytes_per_5m_bucket_by_type\": {{{}}}, "
      "\"chunk_table_bytes\": {}, \"chunk_overflow_bytes\": {}, "
      "\"empty_db_bytes\": {}, \"db_bytes\": {}, \"db_bytes_vacuumed\": {}, "
      "\"bytes_per_bucket\": {:.3f}, \"bytes_per_bucket_vacuumed\": {:.3f}, "
      "\"projected_gb\": {:.3f}, \"projected_gb_vacuumed\": {:.3f}, \"goal_gb\": {:.1f}, "
      "\"ratio\": {:.3f}, \"raw_rows\": {}, \"raw_db_bytes\": {}, \"raw_db_bytes_vacuumed\": {}, "
      "\"raw_bytes_per_sample\": {:.1f}, \"raw_bytes_per_sample_vacuumed\": {:.1f}, "
      "\"raw_90d_gb\": {:.2f}, \"raw_90d_gb_vacuumed\": {:.2f}, "
      "\"simulate_s\": {:.1f}, \"encode_s\": {:.1f}}}\n",
      fleet.size(), o.days, o.noise, o.missing, rollups.samples(),
      1.0 - static_cast<double>(rollups.samples()) / possible, buckets_5m, slots, res_buckets[1],
      res_buckets[2], chunks,
      overflow_bytes ? *overflow_bytes / std::max<int64_t>(1, page_size) : -1, page_size,
      res_chunk_bytes[0], res_chunk_bytes[1], res_chunk_bytes[2],
      static_cast<double>(chunk_bytes) / buckets_5m,
      static_cast<double>(res_chunk_bytes[0]) / buckets_5m, by_type, chunk_table_bytes.value_or(-1),
      overflow_bytes.value_or(-1), empty_bytes, rollup_size.grown - empty_bytes,
      rollup_size.vacuumed - empty_bytes, per_bucket, per_bucket_vacuumed, projected / 1e9,
      per_bucket_vacuumed * kFiveYearBuckets / 1e9, kGoalBytes / 1e9, projected / kGoalBytes,
      raw_rows, raw_size.grown - empty_bytes, raw_size.vacuumed - empty_bytes, raw_per_sample,
      raw_per_sample_vacuumed, raw_per_sample * raw_90d / 1e9,
      raw_per_sample_vacuumed * raw_90d / 1e9, sim_s, encode_s);
  std::fflush(stdout);
  return 0;
}

}  // namespace

HistoryBenches::HistoryBenches(CLI::App* app) {
  HistoryBenchOptions& o = options_;
  auto common = [&](CLI::App* c) {
    c->add_option("--dir", o.dir, "directory for the databases (replaced files)");
    c->add_flag("--keep", o.keep, "keep the databases afterwards");
    c->add_option("--ders", o.ders, "DERs in the simulated fleet")->check(CLI::Range(1, 1000000));
    c->add_option("--noise", o.noise, "meter noise on active power, share of the rating")
        ->check(CLI::Range(0.0, 1.0));
    c->add_option("--missing", o.missing, "share of samples lost")->check(CLI::Range(0.0, 0.9));
    c->add_option("--sqlite-pragmas", o.sqlite_pragmas,
                  "what-if: run these PRAGMAs on every connection, both sides (e.g. "
                  "\"PRAGMA cache_size = -65536\")");
  };
  insert_ = app->add_subcommand("store-insert", "Store ingest rows/s vs a bare INSERT loop");
  under_query_ = app->add_subcommand("store-insert-under-query",
                                     "Store ingest rows/s with long queries running vs without");
  size_ = app->add_subcommand("history-size", "bytes per stored rollup bucket and raw sample");
  for (CLI::App* c : {insert_, under_query_}) {
    common(c);
    c->add_option("--records", c == insert_ ? o.records : o.query_records,
                  "telemetry records per timed run")
        ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
    c->add_option("--repeats", o.repeats, "timed runs of each side, alternating")
        ->check(CLI::Range(1, 1000));
  }
  under_query_->add_option("--prefill", o.prefill, "telemetry rows in the table beforehand")
      ->check(CLI::Range(uint64_t{1000}, uint64_t{1000000000}));
  under_query_
      ->add_option("--reader", o.reader,
                   "queries: long queries back to back; snapshot: a read transaction held "
                   "open, no CPU; cpu: a spinning thread, no SQLite")
      ->check(CLI::IsMember({"queries", "snapshot", "cpu"}));
  under_query_
      ->add_option(
          "--wal-limit-mb", o.wal_limit_mb,
          "what-if: a TRUNCATE checkpoint after the commit that takes the WAL past this (0: none)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  common(size_);
  size_->add_option("--days", o.days, "days of 1-minute telemetry")->check(CLI::Range(1, 3650));
  size_->add_option("--raw-days", o.raw_days, "of those, days also stored raw")
      ->check(CLI::Range(1, 3650));
}

bool HistoryBenches::chosen() const { return *insert_ || *under_query_ || *size_; }

int HistoryBenches::Run() const {
  ApplyToEveryConnection(options_.sqlite_pragmas, options_.wal_limit_mb);
  if (*insert_) return StoreInsert(options_);
  if (*under_query_) return StoreInsertUnderQuery(options_);
  HistoryBenchOptions o = options_;
  o.raw_days = std::min(o.raw_days, o.days);
  return HistorySize(o);
}

}  // namespace derms::bench
