#include "cloud_aggregator/storage/history_jobs.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cloud_aggregator/history/chunk_codec.h"
#include "cloud_aggregator/storage/rollup_reader.h"

namespace derms::storage {
namespace {

constexpr int64_t kMsPerHour = 3600 * 1000;
constexpr int64_t kMsPerDay = 86400 * 1000;
// Rows per expiry transaction, and chunks per sealing transaction: each
// keeps the writer busy for a few milliseconds at most.
constexpr int64_t kExpireSlice = 5000;
constexpr size_t kSealSlice = 200;
constexpr size_t kLateSlice = 20000;

const char* const kWatermarkKey = "rollup_watermark_ms";

// A prepared statement on the jobs' connection, finalized on destruction.
class Reader {
 public:
  Reader(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
      error_ = Status::Error("storage_error",
                             fmt::format("history jobs: {}: {}", sqlite3_errmsg(db), sql));
    }
  }
  ~Reader() { sqlite3_finalize(stmt_); }
  Reader& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Reader& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.c_str(), -1, SQLITE_TRANSIENT);
    return *this;
  }
  // Calls `row(stmt)` for each row.
  template <typename F>
  Status Each(F&& row) {
    if (!error_.ok()) return error_;
    int rc;
    while ((rc = sqlite3_step(stmt_)) == SQLITE_ROW) row(stmt_);
    Status s =
        rc == SQLITE_DONE
            ? Status::Ok()
            : Status::Error("storage_error", fmt::format("history jobs: {}", sqlite3_errmsg(db_)));
    sqlite3_reset(stmt_);
    return s;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  Status error_;
};

std::string Text(sqlite3_stmt* stmt, int i) {
  const unsigned char* t = sqlite3_column_text(stmt, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

struct DerInfo {
  double interval_s = 0;
  double max_discharge_kw = 0;
};

// Buckets touched in this pass, per resolution: (der_id, bucket_ms).
using Touched = std::set<std::pair<std::string, int64_t>>;

}  // namespace

StatusOr<std::unique_ptr<HistoryJobs>> HistoryJobs::Start(Store* store,
                                                          const HistoryOptions& options,
                                                          std::function<int64_t()> now_ms) {
  sqlite3* db = nullptr;
  // Read-write only so that it may create the WAL index if it must; it
  // never writes (query_only), the Store's writer does.
  if (sqlite3_open_v2(store->path().c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK ||
      sqlite3_exec(db, "PRAGMA query_only = 1", nullptr, nullptr, nullptr) != SQLITE_OK) {
    Status s = Status::Error("storage_error", fmt::format("history jobs: database '{}': {}",
                                                          store->path(), sqlite3_errmsg(db)));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  return std::unique_ptr<HistoryJobs>(new HistoryJobs(store, options, std::move(now_ms), db));
}

HistoryJobs::HistoryJobs(Store* store, const HistoryOptions& options,
                         std::function<int64_t()> now_ms, sqlite3* db)
    : store_(store), options_(options), now_ms_(std::move(now_ms)), db_(db) {
  if (options_.interval_s > 0) thread_ = std::thread([this] { Loop(); });
}

HistoryJobs::~HistoryJobs() {
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(pass_mutex_);
  sqlite3_close(db_);
}

void HistoryJobs::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(stop_mutex_);
      if (stop_cv_.wait_for(lock, std::chrono::seconds(options_.interval_s),
                            [this] { return stopping_; })) {
        return;
      }
    }
    Status s = RunOnce(now_ms_());
    if (!s.ok()) spdlog::error("history jobs: {}", s.message());
  }
}

// What one pass carries from step to step.
struct HistoryJobs::Pass {
  explicit Pass(sqlite3* db) : reader(db) {}
  void Keep(const Status& s) {
    if (first.ok() && !s.ok()) first = s;
  }
  DerInfo Info(const std::string& der_id, double default_interval_s) const {
    DerInfo d;
    auto it = ders.find(der_id);
    if (it != ders.end()) d = it->second;
    if (d.interval_s <= 0) d.interval_s = default_interval_s;
    return d;
  }

  Status first;        // the first error met; the pass goes on past it...
  bool stored = true;  // ...but not past a failed Flush: each step reads what the last committed
  RollupReader reader;
  std::unordered_map<std::string, DerInfo> ders;
  std::map<int64_t, Touched> touched;  // resolution -> DER buckets written
};

Status HistoryJobs::RunOnce(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(pass_mutex_);
  auto wall_start = std::chrono::steady_clock::now();
  Pass pass(db_);
  const int64_t rolled_up_to = RollRaw(pass, now_ms);
  if (pass.stored) CombineUp(pass);
  if (pass.stored) SumVders(pass);
  if (pass.stored) Seal(pass, now_ms);
  if (pass.stored) Expire(pass, now_ms, rolled_up_to);
  ++counters_.passes;
  if (!pass.first.ok()) ++counters_.errors;
  counters_.last_pass_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - wall_start)
                               .count();
  return pass.first;
}

int64_t HistoryJobs::RollRaw(Pass& pass, int64_t now_ms) {
  // Where the last pass stopped; a new database starts at its oldest sample.
  int64_t watermark = -1;
  pass.Keep(Reader(db_, "SELECT value FROM history_state WHERE key = ?")
                .Bind(1, std::string(kWatermarkKey))
                .Each([&](sqlite3_stmt* s) { watermark = sqlite3_column_int64(s, 0); }));
  const int64_t target = history::BucketStart(now_ms - options_.grace_s * 1000, history::k5Min);
  if (watermark < 0) {
    watermark = target;
    pass.Keep(Reader(db_, "SELECT MIN(timestamp_ms) FROM telemetry").Each([&](sqlite3_stmt* s) {
      if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
        watermark =
            std::min(target, history::BucketStart(sqlite3_column_int64(s, 0), history::k5Min));
      }
    }));
  }
  const int64_t end =
      std::max(watermark, std::min(target, watermark + options_.max_hours_per_pass * kMsPerHour));
  // From here on the writer marks samples for buckets before `end` as late;
  // the flush makes sure every sample stored without that check is in the
  // snapshot read below.
  store_->SetRollupWatermark(end);
  if (!Committed(pass)) return watermark;

  pass.Keep(Reader(db_, "SELECT der_id, telemetry_interval_s, max_discharge_kw FROM ders")
                .Each([&](sqlite3_stmt* s) {
                  pass.ders[Text(s, 0)] =
                      DerInfo{sqlite3_column_double(s, 1), sqlite3_column_double(s, 2)};
                }));

  // Rows ordered by DER and time: each run of one DER's bucket is rolled up.
  HistoryWriteRecord write;
  Touched& touched = pass.touched[history::k5Min];
  auto roll_up = [&](Reader& q) {
    std::string der_id;
    int64_t bucket_ms = 0;
    std::vector<history::Sample> samples;
    auto flush = [&] {
      if (samples.empty()) return;
      double interval_s = pass.Info(der_id, options_.default_interval_s).interval_s;
      write.open_rows.push_back(
          RollupRow{history::k5Min, "der", der_id,
                    history::Rollup(samples, bucket_ms, history::k5Min, interval_s)});
      touched.emplace(der_id, bucket_ms);
      samples.clear();
    };
    pass.Keep(q.Each([&](sqlite3_stmt* st) {
      history::Sample x;
      x.timestamp_ms = sqlite3_column_int64(st, 1);
      std::string id = Text(st, 0);
      int64_t b = history::BucketStart(x.timestamp_ms, history::k5Min);
      if (id != der_id || b != bucket_ms) {
        flush();
        der_id = std::move(id);
        bucket_ms = b;
      }
      x.active_power_kw = sqlite3_column_double(st, 2);
      if (sqlite3_column_type(st, 3) != SQLITE_NULL) x.soc_pct = sqlite3_column_double(st, 3);
      x.available_discharge_kw =
          sqlite3_column_type(st, 4) != SQLITE_NULL
              ? sqlite3_column_double(st, 4)
              : pass.Info(der_id, options_.default_interval_s).max_discharge_kw;
      samples.push_back(x);
    }));
    flush();
  };
  const char* kSampleColumns =
      "SELECT der_id, timestamp_ms, active_power_kw, soc_pct, available_discharge_kw "
      "FROM telemetry";
  // The new buckets...
  if (end > watermark) {
    Reader q(db_, fmt::format("{} WHERE timestamp_ms >= ?1 AND timestamp_ms < ?2 "
                              "ORDER BY der_id, timestamp_ms",
                              kSampleColumns));
    q.Bind(1, watermark).Bind(2, end);
    roll_up(q);
  }
  // ...and those late samples landed in.
  std::vector<std::pair<std::string, int64_t>> late;
  pass.Keep(
      Reader(db_, fmt::format("SELECT der_id, bucket_ms FROM rollup_late LIMIT {}", kLateSlice))
          .Each(
              [&](sqlite3_stmt* s) { late.emplace_back(Text(s, 0), sqlite3_column_int64(s, 1)); }));
  Reader late_q(db_, fmt::format("{} WHERE der_id = ?1 AND timestamp_ms >= ?2 AND "
                                 "timestamp_ms < ?3 ORDER BY timestamp_ms",
                                 kSampleColumns));
  for (const auto& [der_id, bucket_ms] : late) {
    late_q.Bind(1, der_id).Bind(2, bucket_ms).Bind(3, bucket_ms + history::k5Min * 1000);
    roll_up(late_q);
  }
  counters_.late_buckets += late.size();
  write.handled_late = std::move(late);
  write.state.emplace_back(kWatermarkKey, end);
  counters_.buckets += write.open_rows.size();
  store_->Add(std::move(write));
  if (!Committed(pass)) return watermark;
  counters_.watermark_ms = end;
  return end;
}

bool HistoryJobs::Committed(Pass& pass) {
  Status s = store_->Flush();
  if (s.ok()) return true;
  // The store keeps what it was given and retries it; the next pass starts
  // again from the stored watermark.
  pass.Keep(Status::Error(s.code(), fmt::format("pass stopped: {}", s.message())));
  pass.stored = false;
  return false;
}

void HistoryJobs::CombineUp(Pass& pass) {
  const std::pair<int64_t, int64_t> steps[] = {{history::kHour, history::k5Min},
                                               {history::kDay, history::kHour}};
  for (const auto& [res, fine_res] : steps) {
    Touched& coarse = pass.touched[res];
    for (const auto& [der_id, fine_ms] : pass.touched[fine_res]) {
      coarse.emplace(der_id, history::BucketStart(fine_ms, res));
    }
    HistoryWriteRecord up;
    for (const auto& [der_id, bucket_ms] : coarse) {
      auto fine = pass.reader.Series(fine_res, "der", der_id, bucket_ms, bucket_ms + res * 1000);
      if (!fine.ok()) {
        pass.Keep(fine.status());
        continue;
      }
      if (fine->empty()) continue;
      up.open_rows.push_back(
          RollupRow{res, "der", der_id, history::Combine(*fine, bucket_ms, res, fine_res)});
    }
    counters_.buckets += up.open_rows.size();
    store_->Add(std::move(up));
    if (!Committed(pass)) return;  // the next resolution reads these
  }
}

void HistoryJobs::SumVders(Pass& pass) {
  std::unordered_map<std::string, std::vector<std::string>> vders_of;    // der -> vders
  std::unordered_map<std::string, std::vector<std::string>> members_of;  // vder -> ders
  pass.Keep(Reader(db_, "SELECT vder_id, der_id FROM vder_members").Each([&](sqlite3_stmt* s) {
    std::string vder_id = Text(s, 0), der_id = Text(s, 1);
    vders_of[der_id].push_back(vder_id);
    members_of[vder_id].push_back(std::move(der_id));
  }));
  if (members_of.empty()) return;
  Reader open_at(db_,
                 "SELECT id, bucket_ms, samples, availability, min_kw, max_kw, mean_kw, "
                 "export_kwh, import_kwh, soc_pct, capacity_kw FROM rollups_open WHERE "
                 "resolution_s = ?1 AND kind = 'der' AND bucket_ms = ?2");
  Reader chunks_at(db_,
                   "SELECT id, data FROM rollup_chunks WHERE resolution_s = ?1 AND "
                   "kind = 'der' AND chunk_ms = ?2");
  for (const auto& [res, buckets] : pass.touched) {
    std::map<int64_t, std::set<std::string>> vder_buckets;  // bucket -> vders to redo
    for (const auto& [der_id, bucket_ms] : buckets) {
      auto it = vders_of.find(der_id);
      if (it == vders_of.end()) continue;
      vder_buckets[bucket_ms].insert(it->second.begin(), it->second.end());
    }
    HistoryWriteRecord up;
    for (const auto& [bucket_ms, vders] : vder_buckets) {
      // Every DER's bucket at this instant: sealed ones first, open over them.
      std::unordered_map<std::string, history::Bucket> at;
      pass.Keep(chunks_at.Bind(1, res)
                    .Bind(2, history::ChunkStart(bucket_ms, res))
                    .Each([&](sqlite3_stmt* s) {
                      std::string_view blob(static_cast<const char*>(sqlite3_column_blob(s, 1)),
                                            static_cast<size_t>(sqlite3_column_bytes(s, 1)));
                      auto decoded = history::DecodeChunk(blob, res);
                      if (!decoded.ok()) return pass.Keep(decoded.status());
                      for (const auto& b : *decoded) {
                        if (b.start_ms == bucket_ms) at[Text(s, 0)] = b;
                      }
                    }));
      pass.Keep(open_at.Bind(1, res).Bind(2, bucket_ms).Each([&](sqlite3_stmt* s) {
        at[Text(s, 0)] = BucketFromRow(s, 1);
      }));
      for (const auto& vder_id : vders) {
        const auto& members = members_of[vder_id];
        std::vector<history::Bucket> parts;
        for (const auto& der_id : members) {
          auto it = at.find(der_id);
          if (it != at.end()) parts.push_back(it->second);
        }
        if (parts.empty()) continue;
        up.open_rows.push_back(
            RollupRow{res, "vder", vder_id, history::SumMembers(parts, bucket_ms, members.size())});
      }
    }
    counters_.buckets += up.open_rows.size();
    store_->Add(std::move(up));
  }
  Committed(pass);
}

void HistoryJobs::Seal(Pass& pass, int64_t now_ms) {
  for (int64_t res : {history::k5Min, history::kHour, history::kDay}) {
    const int64_t span = history::ChunkSpanMs(res);
    const int64_t cutoff = history::ChunkStart(now_ms - options_.seal_after_s * 1000, res);
    std::vector<std::tuple<std::string, std::string, int64_t>> due;
    pass.Keep(Reader(db_,
                     "SELECT DISTINCT kind, id, bucket_ms - bucket_ms % ?2 FROM "
                     "rollups_open WHERE resolution_s = ?1 AND bucket_ms < ?3")
                  .Bind(1, res)
                  .Bind(2, span)
                  .Bind(3, cutoff)
                  .Each([&](sqlite3_stmt* s) {
                    due.emplace_back(Text(s, 0), Text(s, 1), sqlite3_column_int64(s, 2));
                  }));
    HistoryWriteRecord seal;
    for (const auto& [kind, id, chunk_ms] : due) {
      auto buckets = pass.reader.Series(res, kind, id, chunk_ms, chunk_ms + span);
      if (!buckets.ok()) {
        pass.Keep(buckets.status());
        continue;
      }
      auto blob = history::EncodeChunk(*buckets, res);
      if (!blob.ok()) {
        pass.Keep(Status::Error(
            blob.status().code(),
            fmt::format("sealing {} '{}' {} chunk {}: {}", kind, id, history::ResolutionName(res),
                        chunk_ms, blob.status().message())));
        continue;
      }
      seal.chunks.push_back(ChunkRow{res, kind, id, chunk_ms, static_cast<int64_t>(buckets->size()),
                                     std::move(*blob)});
      if (seal.chunks.size() >= kSealSlice) {
        counters_.chunks_sealed += seal.chunks.size();
        store_->Add(std::move(seal));
        seal = HistoryWriteRecord{};
      }
    }
    counters_.chunks_sealed += seal.chunks.size();
    if (!seal.chunks.empty()) store_->Add(std::move(seal));
  }
  Committed(pass);
}

void HistoryJobs::Expire(Pass& pass, int64_t now_ms, int64_t rolled_up_to) {
  // In slices while anything older than the cutoff is left (?1 cutoff, ?2
  // resolution, ?3 chunk span).
  auto expire = [&](int64_t res, int64_t before_ms, const char* exists_sql) {
    Reader exists(db_, exists_sql);
    for (int slice = 0; slice < 200; ++slice) {
      bool any = false;
      pass.Keep(exists.Bind(1, before_ms)
                    .Bind(2, res)
                    .Bind(3, history::ChunkSpanMs(res))
                    .Each([&](sqlite3_stmt* s) { any = sqlite3_column_int(s, 0) != 0; }));
      if (!any) return;
      store_->Add(ExpireRecord{res, before_ms, kExpireSlice});
      if (!Committed(pass)) return;
    }
  };
  // Raw samples go only once rolled up.
  if (options_.raw_days > 0) {
    expire(0, std::min(now_ms - options_.raw_days * kMsPerDay, rolled_up_to),
           "SELECT EXISTS (SELECT 1 FROM telemetry WHERE timestamp_ms < ?1) OR EXISTS (SELECT 1 "
           "FROM telemetry_quarantine WHERE received_ms < ?1) + 0 * ?2 + 0 * ?3");
  }
  const std::pair<int64_t, int64_t> keep[] = {{history::k5Min, options_.rollup_5m_days},
                                              {history::kHour, options_.rollup_1h_days},
                                              {history::kDay, options_.rollup_1d_days}};
  for (const auto& [res, days] : keep) {
    if (days <= 0) continue;
    expire(res, history::ChunkStart(now_ms - days * kMsPerDay, res),
           "SELECT EXISTS (SELECT 1 FROM rollup_chunks WHERE resolution_s = ?2 AND "
           "chunk_ms + ?3 <= ?1) OR EXISTS (SELECT 1 FROM rollups_open "
           "WHERE resolution_s = ?2 AND bucket_ms < ?1)");
  }
}

}  // namespace derms::storage
