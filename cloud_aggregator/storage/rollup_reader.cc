#include "cloud_aggregator/storage/rollup_reader.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <climits>
#include <map>
#include <optional>
#include <string_view>

#include "cloud_aggregator/history/chunk_codec.h"

namespace derms::storage {
namespace {

std::string Text(sqlite3_stmt* stmt, int i) {
  const unsigned char* t = sqlite3_column_text(stmt, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

// A statement prepared once, reset before each use.
struct Query {
  Query(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr); }
  ~Query() { sqlite3_finalize(stmt); }
  sqlite3_stmt* Start() {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return stmt;
  }
  sqlite3_stmt* stmt = nullptr;
};

}  // namespace

history::Bucket BucketFromRow(sqlite3_stmt* stmt, int first) {
  history::Bucket b;
  b.start_ms = sqlite3_column_int64(stmt, first);
  b.samples = static_cast<uint32_t>(sqlite3_column_int64(stmt, first + 1));
  b.availability = sqlite3_column_double(stmt, first + 2);
  b.min_kw = sqlite3_column_double(stmt, first + 3);
  b.max_kw = sqlite3_column_double(stmt, first + 4);
  b.mean_kw = sqlite3_column_double(stmt, first + 5);
  b.export_kwh = sqlite3_column_double(stmt, first + 6);
  b.import_kwh = sqlite3_column_double(stmt, first + 7);
  if (sqlite3_column_type(stmt, first + 8) != SQLITE_NULL) {
    b.soc_pct = sqlite3_column_double(stmt, first + 8);
  }
  b.capacity_kw = sqlite3_column_double(stmt, first + 9);
  return b;
}

struct RollupReader::Statements {
  explicit Statements(sqlite3* db)
      : db(db),
        chunks(db,
               "SELECT chunk_ms, data FROM rollup_chunks WHERE resolution_s = ?1 AND kind = ?2 "
               "AND id = ?3 AND chunk_ms > ?4 - ?6 AND chunk_ms < ?5 "
               "ORDER BY chunk_ms"),
        open(db,
             "SELECT bucket_ms, samples, availability, min_kw, max_kw, mean_kw, export_kwh, "
             "import_kwh, soc_pct, capacity_kw FROM rollups_open WHERE resolution_s = ?1 AND "
             "kind = ?2 AND id = ?3 AND bucket_ms >= ?4 AND bucket_ms < ?5 ORDER BY bucket_ms") {}
  sqlite3* db;
  Query chunks, open;
};

RollupReader::RollupReader(sqlite3* db) : statements_(std::make_unique<Statements>(db)) {}
RollupReader::~RollupReader() = default;

StatusOr<std::vector<history::Bucket>> RollupReader::Series(int64_t resolution_s,
                                                            const std::string& kind,
                                                            const std::string& id, int64_t from_ms,
                                                            int64_t to_ms) {
  std::map<int64_t, history::Bucket> out;
  for (Query* q : {&statements_->chunks, &statements_->open}) {
    if (q->stmt == nullptr) {
      return Status::Error("storage_error",
                           fmt::format("rollups: {}", sqlite3_errmsg(statements_->db)));
    }
    sqlite3_stmt* stmt = q->Start();
    sqlite3_bind_int64(stmt, 1, resolution_s);
    sqlite3_bind_text(stmt, 2, kind.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 3, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 4, from_ms);
    sqlite3_bind_int64(stmt, 5, to_ms);
    sqlite3_bind_int64(stmt, 6, history::ChunkSpanMs(resolution_s));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (q == &statements_->chunks) {
        std::string_view blob(static_cast<const char*>(sqlite3_column_blob(stmt, 1)),
                              static_cast<size_t>(sqlite3_column_bytes(stmt, 1)));
        auto buckets = history::DecodeChunk(blob, resolution_s);
        if (!buckets.ok()) {
          return Status::Error(
              buckets.status().code(),
              fmt::format("rollups of {} '{}' at {}, chunk {}: {}", kind, id,
                          history::ResolutionName(resolution_s), sqlite3_column_int64(stmt, 0),
                          buckets.status().message()));
        }
        for (const auto& b : *buckets) {
          if (b.start_ms >= from_ms && b.start_ms < to_ms) out[b.start_ms] = b;
        }
      } else {
        history::Bucket b = BucketFromRow(stmt, 0);
        out[b.start_ms] = b;  // a revised bucket overrides the sealed one
      }
    }
    if (rc != SQLITE_DONE) {
      return Status::Error("storage_error",
                           fmt::format("rollups: {}", sqlite3_errmsg(statements_->db)));
    }
  }
  std::vector<history::Bucket> buckets;
  buckets.reserve(out.size());
  for (auto& [start, b] : out) buckets.push_back(std::move(b));
  return buckets;
}

StatusOr<std::vector<history::Bucket>> ReadSeries(const std::string& db_path, int64_t resolution_s,
                                                  const std::string& kind, const std::string& id,
                                                  int64_t from_ms, int64_t to_ms) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    Status s = Status::Error("storage_error",
                             fmt::format("database '{}': {}", db_path, sqlite3_errmsg(db)));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  StatusOr<std::vector<history::Bucket>> out = [&]() -> StatusOr<std::vector<history::Bucket>> {
    RollupReader reader(db);
    auto buckets = reader.Series(resolution_s, kind, id, from_ms, to_ms);
    if (!buckets.ok() || !buckets->empty()) return buckets;
    // Nothing in range: say whether the series exists at all.
    sqlite3_stmt* stmt = nullptr;
    std::string known;
    bool exists = false;
    if (sqlite3_prepare_v2(db,
                           "SELECT DISTINCT id FROM rollups_open WHERE kind = ?1 UNION SELECT "
                           "DISTINCT id FROM rollup_chunks WHERE kind = ?1 ORDER BY 1",
                           -1, &stmt, nullptr) == SQLITE_OK) {
      sqlite3_bind_text(stmt, 1, kind.c_str(), -1, SQLITE_TRANSIENT);
      int n = 0;
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        std::string name = Text(stmt, 0);
        exists = exists || name == id;
        if (n++ < 20) known += (known.empty() ? "" : ", ") + name;
      }
      if (n > 20) known += ", ...";
    }
    sqlite3_finalize(stmt);
    if (!exists) {
      return Status::Error("not_found",
                           fmt::format("database '{}' holds no rollups of {} '{}' (it has: {})",
                                       db_path, kind, id, known.empty() ? "none" : known));
    }
    return buckets;
  }();
  sqlite3_close(db);
  return out;
}

// ---- the virtual table ----
namespace {

enum Column {
  kResolution,
  kKind,
  kId,
  kBucketMs,
  kSamples,
  kAvailability,
  kMinKw,
  kMaxKw,
  kMeanKw,
  kExportKwh,
  kImportKwh,
  kSocPct,
  kCapacityKw,
};

// idxNum bits: which constraints xFilter receives, in this order.
enum Use {
  kUseRes = 1,
  kUseKind = 2,
  kUseId = 4,
  kUseFrom = 8,
  kUseFromGt = 16,
  kUseTo = 32,
  kUseToLe = 64,
  kUseAt = 128
};

struct Table {
  sqlite3_vtab base{};
  sqlite3* db = nullptr;
};

struct Series {
  int64_t resolution_s;
  std::string kind;
  std::string id;
};

struct Cursor {
  sqlite3_vtab_cursor base{};
  std::unique_ptr<RollupReader> reader;
  std::vector<Series> series;
  size_t series_index = 0;
  bool series_loaded = false;         // chunk_starts are those of series[series_index]
  std::vector<int64_t> chunk_starts;  // of the current series
  size_t chunk_index = 0;
  std::vector<history::Bucket> buckets;  // of the current chunk
  size_t bucket_index = 0;
  int64_t from_ms = INT64_MIN;
  int64_t to_ms = INT64_MAX;  // exclusive
  int64_t rowid = 0;
  bool eof = true;
};

int SetError(sqlite3_vtab* vtab, const std::string& message) {
  sqlite3_free(vtab->zErrMsg);
  vtab->zErrMsg = sqlite3_mprintf("%s", message.c_str());
  return SQLITE_ERROR;
}

int Connect(sqlite3* db, void*, int, const char* const*, sqlite3_vtab** out, char**) {
  int rc = sqlite3_declare_vtab(
      db,
      "CREATE TABLE x(resolution TEXT, kind TEXT, id TEXT, bucket_ms INTEGER, samples INTEGER, "
      "availability REAL, min_kw REAL, max_kw REAL, mean_kw REAL, export_kwh REAL, "
      "import_kwh REAL, soc_pct REAL, capacity_kw REAL)");
  if (rc != SQLITE_OK) return rc;
  auto* table = new Table();
  table->db = db;
  *out = &table->base;
  sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  return SQLITE_OK;
}

int Disconnect(sqlite3_vtab* vtab) {
  delete reinterpret_cast<Table*>(vtab);
  return SQLITE_OK;
}

int BestIndex(sqlite3_vtab*, sqlite3_index_info* info) {
  int found[8];
  for (int& f : found) f = -1;
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    if (!c.usable) continue;
    int bit = -1;
    if (c.iColumn == kResolution && c.op == SQLITE_INDEX_CONSTRAINT_EQ) bit = 0;
    if (c.iColumn == kKind && c.op == SQLITE_INDEX_CONSTRAINT_EQ) bit = 1;
    if (c.iColumn == kId && c.op == SQLITE_INDEX_CONSTRAINT_EQ) bit = 2;
    if (c.iColumn == kBucketMs) {
      if (c.op == SQLITE_INDEX_CONSTRAINT_GE) bit = 3;
      if (c.op == SQLITE_INDEX_CONSTRAINT_GT) bit = 4;
      if (c.op == SQLITE_INDEX_CONSTRAINT_LT) bit = 5;
      if (c.op == SQLITE_INDEX_CONSTRAINT_LE) bit = 6;
      if (c.op == SQLITE_INDEX_CONSTRAINT_EQ) bit = 7;
    }
    if (bit >= 0 && found[bit] < 0) found[bit] = i;
  }
  int idx = 0, argv = 0;
  double cost = 1e9;
  for (int bit = 0; bit < 8; ++bit) {
    if (found[bit] < 0) continue;
    idx |= 1 << bit;
    info->aConstraintUsage[found[bit]].argvIndex = ++argv;
    // Text equality on resolution/kind/id is exact; SQLite checks again
    // anyway where affinity could differ.
    info->aConstraintUsage[found[bit]].omit = bit >= 3;
    cost /= bit == 2 ? 1000 : 10;
  }
  info->idxNum = idx;
  info->estimatedCost = cost;
  // Rows come ordered by (resolution_s, kind, id, bucket_ms): an ORDER BY
  // on a prefix of kind, id, bucket_ms ascending needs no sort when the
  // resolution is fixed.
  bool ordered = (idx & kUseRes) != 0;
  const int order[] = {kKind, kId, kBucketMs};
  for (int i = 0; ordered && i < info->nOrderBy; ++i) {
    ordered = i < 3 && info->aOrderBy[i].iColumn == order[i] && !info->aOrderBy[i].desc;
  }
  info->orderByConsumed = ordered && info->nOrderBy > 0;
  return SQLITE_OK;
}

int Open(sqlite3_vtab* vtab, sqlite3_vtab_cursor** out) {
  auto* cursor = new Cursor();
  cursor->reader = std::make_unique<RollupReader>(reinterpret_cast<Table*>(vtab)->db);
  *out = &cursor->base;
  return SQLITE_OK;
}

int Close(sqlite3_vtab_cursor* cur) {
  delete reinterpret_cast<Cursor*>(cur);
  return SQLITE_OK;
}

// Moves to the next bucket in range: the next one of the current chunk, else
// the first of the next chunk holding any, else of the next series.
int Load(Cursor* cur, sqlite3_vtab* vtab) {
  sqlite3* db = reinterpret_cast<Table*>(vtab)->db;
  while (true) {
    if (cur->bucket_index < cur->buckets.size()) return SQLITE_OK;
    if (cur->series_loaded && cur->chunk_index < cur->chunk_starts.size()) {
      const Series& s = cur->series[cur->series_index];
      int64_t start = cur->chunk_starts[cur->chunk_index++];
      int64_t from = std::max(start, cur->from_ms);
      int64_t to = std::min(start + history::ChunkSpanMs(s.resolution_s), cur->to_ms);
      auto buckets = cur->reader->Series(s.resolution_s, s.kind, s.id, from, to);
      if (!buckets.ok()) return SetError(vtab, buckets.status().message());
      cur->buckets = std::move(buckets).value();
      cur->bucket_index = 0;
      continue;
    }
    if (cur->series_loaded) ++cur->series_index;
    if (cur->series_index >= cur->series.size()) {
      cur->eof = true;
      return SQLITE_OK;
    }
    // The chunks of this series that touch the range.
    const Series& s = cur->series[cur->series_index];
    cur->series_loaded = true;
    cur->chunk_starts.clear();
    cur->chunk_index = 0;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(
        db,
        "SELECT chunk_ms FROM rollup_chunks WHERE resolution_s = ?1 AND kind = ?2 AND id = ?3 "
        "AND chunk_ms > ?4 - ?6 AND chunk_ms < ?5 UNION SELECT bucket_ms - bucket_ms % ?6 FROM "
        "rollups_open WHERE resolution_s = ?1 AND kind = ?2 AND id = ?3 AND bucket_ms >= ?4 "
        "AND bucket_ms < ?5 ORDER BY 1",
        -1, &stmt, nullptr);
    if (rc != SQLITE_OK) return SetError(vtab, sqlite3_errmsg(db));
    sqlite3_bind_int64(stmt, 1, s.resolution_s);
    sqlite3_bind_text(stmt, 2, s.kind.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 3, s.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 4, cur->from_ms);
    sqlite3_bind_int64(stmt, 5, cur->to_ms);
    sqlite3_bind_int64(stmt, 6, history::ChunkSpanMs(s.resolution_s));
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      cur->chunk_starts.push_back(sqlite3_column_int64(stmt, 0));
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) return SetError(vtab, sqlite3_errmsg(db));
  }
}

int Filter(sqlite3_vtab_cursor* base, int idx, const char*, int argc, sqlite3_value** argv) {
  auto* cur = reinterpret_cast<Cursor*>(base);
  sqlite3_vtab* vtab = base->pVtab;
  sqlite3* db = reinterpret_cast<Table*>(vtab)->db;
  cur->series.clear();
  cur->chunk_starts.clear();
  cur->buckets.clear();
  cur->series_index = cur->chunk_index = cur->bucket_index = 0;
  cur->series_loaded = false;
  cur->from_ms = INT64_MIN / 2;
  cur->to_ms = INT64_MAX / 2;
  cur->rowid = 0;
  cur->eof = false;
  int arg = 0;
  std::optional<int64_t> resolution;
  std::optional<std::string> kind, id;
  auto text = [&](sqlite3_value* v) {
    const unsigned char* t = sqlite3_value_text(v);
    return std::string(t ? reinterpret_cast<const char*>(t) : "");
  };
  if (idx & kUseRes) {
    std::string name = text(argv[arg++]);
    resolution = history::ParseResolution(name);
    if (*resolution == 0) {
      return SetError(vtab, fmt::format("rollups: resolution '{}' is not one of 5m, 1h, 1d", name));
    }
  }
  if (idx & kUseKind) kind = text(argv[arg++]);
  if (idx & kUseId) id = text(argv[arg++]);
  if (idx & kUseFrom)
    cur->from_ms = std::max<int64_t>(cur->from_ms, sqlite3_value_int64(argv[arg++]));
  if (idx & kUseFromGt) {
    cur->from_ms = std::max<int64_t>(cur->from_ms, sqlite3_value_int64(argv[arg++]) + 1);
  }
  if (idx & kUseTo) cur->to_ms = std::min<int64_t>(cur->to_ms, sqlite3_value_int64(argv[arg++]));
  if (idx & kUseToLe)
    cur->to_ms = std::min<int64_t>(cur->to_ms, sqlite3_value_int64(argv[arg++]) + 1);
  if (idx & kUseAt) {
    int64_t at = sqlite3_value_int64(argv[arg++]);
    cur->from_ms = std::max(cur->from_ms, at);
    cur->to_ms = std::min(cur->to_ms, at + 1);
  }
  (void)argc;
  // The series to visit, in order.
  std::string where = " WHERE 1";
  if (resolution) where += " AND resolution_s = ?1";
  if (kind) where += " AND kind = ?2";
  if (id) where += " AND id = ?3";
  std::string sql = "SELECT resolution_s, kind, id FROM rollup_chunks" + where +
                    " UNION SELECT resolution_s, kind, id FROM rollups_open" + where +
                    " ORDER BY 1, 2, 3";
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    return SetError(vtab, sqlite3_errmsg(db));
  }
  if (resolution) sqlite3_bind_int64(stmt, 1, *resolution);
  if (kind) sqlite3_bind_text(stmt, 2, kind->c_str(), -1, SQLITE_TRANSIENT);
  if (id) sqlite3_bind_text(stmt, 3, id->c_str(), -1, SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    cur->series.push_back(Series{sqlite3_column_int64(stmt, 0), Text(stmt, 1), Text(stmt, 2)});
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return SetError(vtab, sqlite3_errmsg(db));
  if (cur->series.empty() || cur->from_ms >= cur->to_ms) {
    cur->eof = true;
    return SQLITE_OK;
  }
  return Load(cur, vtab);
}

int Next(sqlite3_vtab_cursor* base) {
  auto* cur = reinterpret_cast<Cursor*>(base);
  ++cur->bucket_index;
  ++cur->rowid;
  return Load(cur, base->pVtab);
}

int Eof(sqlite3_vtab_cursor* base) { return reinterpret_cast<Cursor*>(base)->eof; }

int ColumnValue(sqlite3_vtab_cursor* base, sqlite3_context* ctx, int column) {
  auto* cur = reinterpret_cast<Cursor*>(base);
  const Series& s = cur->series[cur->series_index];
  const history::Bucket& b = cur->buckets[cur->bucket_index];
  switch (column) {
    case kResolution: {
      std::string name = history::ResolutionName(s.resolution_s);
      sqlite3_result_text(ctx, name.c_str(), -1, SQLITE_TRANSIENT);
      break;
    }
    case kKind:
      sqlite3_result_text(ctx, s.kind.c_str(), -1, SQLITE_TRANSIENT);
      break;
    case kId:
      sqlite3_result_text(ctx, s.id.c_str(), -1, SQLITE_TRANSIENT);
      break;
    case kBucketMs:
      sqlite3_result_int64(ctx, b.start_ms);
      break;
    case kSamples:
      sqlite3_result_int64(ctx, b.samples);
      break;
    case kAvailability:
      sqlite3_result_double(ctx, b.availability);
      break;
    case kMinKw:
      sqlite3_result_double(ctx, b.min_kw);
      break;
    case kMaxKw:
      sqlite3_result_double(ctx, b.max_kw);
      break;
    case kMeanKw:
      sqlite3_result_double(ctx, b.mean_kw);
      break;
    case kExportKwh:
      sqlite3_result_double(ctx, b.export_kwh);
      break;
    case kImportKwh:
      sqlite3_result_double(ctx, b.import_kwh);
      break;
    case kSocPct:
      if (b.soc_pct) {
        sqlite3_result_double(ctx, *b.soc_pct);
      } else {
        sqlite3_result_null(ctx);
      }
      break;
    case kCapacityKw:
      sqlite3_result_double(ctx, b.capacity_kw);
      break;
  }
  return SQLITE_OK;
}

int RowId(sqlite3_vtab_cursor* base, sqlite3_int64* rowid) {
  *rowid = reinterpret_cast<Cursor*>(base)->rowid;
  return SQLITE_OK;
}

sqlite3_module MakeModule() {
  sqlite3_module m{};
  m.iVersion = 0;
  m.xCreate = nullptr;  // eponymous only: nothing in the schema
  m.xConnect = Connect;
  m.xBestIndex = BestIndex;
  m.xDisconnect = Disconnect;
  m.xDestroy = Disconnect;
  m.xOpen = Open;
  m.xClose = Close;
  m.xFilter = Filter;
  m.xNext = Next;
  m.xEof = Eof;
  m.xColumn = ColumnValue;
  m.xRowid = RowId;
  return m;
}

const sqlite3_module kModule = MakeModule();

}  // namespace

Status RegisterRollups(sqlite3* db) {
  if (sqlite3_create_module(db, "rollups", &kModule, nullptr) != SQLITE_OK) {
    return Status::Error("storage_error",
                         fmt::format("rollups virtual table: {}", sqlite3_errmsg(db)));
  }
  return Status::Ok();
}

}  // namespace derms::storage
