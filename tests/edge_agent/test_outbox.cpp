// The telemetry outbox: order, acknowledgements, caps (oldest first, counted)
// over the in-memory storage, and the SQLite storage's persistence.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "edge_agent/agent/agent_options.h"
#include "edge_agent/outbox/memory_storage.h"
#include "edge_agent/outbox/outbox.h"
#include "edge_agent/outbox/sqlite_storage.h"

using namespace derms::edge;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kT0 = 1'700'000'000'000;

Outbox MakeOutbox(OutboxLimits limits = {}) {
  return Outbox(std::make_unique<MemoryOutboxStorage>(), limits);
}

// Adds samples seq first..last, one a second from kT0 + seq s.
std::vector<int64_t> AddSamples(Outbox& outbox, uint64_t first, uint64_t last,
                                std::string payload = "sample") {
  std::vector<int64_t> ids;
  for (uint64_t seq = first; seq <= last; ++seq) {
    int64_t ts = kT0 + static_cast<int64_t>(seq) * 1000;
    auto id = outbox.Add(seq, ts, payload, ts);
    REQUIRE(id.ok());
    ids.push_back(*id);
  }
  return ids;
}

std::vector<uint64_t> Seqs(const std::vector<OutboxRecord>& records) {
  std::vector<uint64_t> seqs;
  for (const auto& r : records) seqs.push_back(r.seq);
  return seqs;
}

std::vector<OutboxRecord> Take(Outbox& outbox, size_t n) {
  auto next = outbox.TakeNext(n);
  REQUIRE(next.ok());
  return *next;
}

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("derms_test_outbox_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

}  // namespace

TEST_CASE("records are handed out oldest first and once while in flight", "[outbox]") {
  Outbox outbox = MakeOutbox();
  AddSamples(outbox, 1, 5);
  CHECK(Seqs(Take(outbox, 3)) == std::vector<uint64_t>{1, 2, 3});
  CHECK(Seqs(Take(outbox, 10)) == std::vector<uint64_t>{4, 5});
  CHECK(Take(outbox, 10).empty());
  CHECK(outbox.in_flight() == 5);
}

TEST_CASE("a record leaves only once acknowledged and committed", "[outbox]") {
  Outbox outbox = MakeOutbox();
  auto ids = AddSamples(outbox, 1, 3);
  auto sent = Take(outbox, 3);
  outbox.Acknowledged(ids[0]);
  outbox.Acknowledged(ids[2]);
  CHECK(outbox.totals().rows == 3);  // not committed yet
  REQUIRE(outbox.Commit().ok());
  CHECK(outbox.totals().rows == 1);
  // The unacknowledged one comes back after the connection is lost; the
  // acknowledged ones never do.
  outbox.ConnectionLost();
  CHECK(Seqs(Take(outbox, 10)) == std::vector<uint64_t>{2});
}

TEST_CASE("a failed publish is handed out again, in order with what follows", "[outbox]") {
  Outbox outbox = MakeOutbox();
  auto ids = AddSamples(outbox, 1, 4);
  CHECK(Seqs(Take(outbox, 2)) == std::vector<uint64_t>{1, 2});
  outbox.Acknowledged(ids[0]);
  outbox.Failed(ids[1]);
  CHECK(Seqs(Take(outbox, 10)) == std::vector<uint64_t>{2, 3, 4});
}

TEST_CASE("a live sample published by the caller is not handed out again", "[outbox]") {
  Outbox outbox = MakeOutbox();
  AddSamples(outbox, 1, 2);  // kept while offline
  auto live = outbox.Add(3, kT0 + 3000, "live", kT0 + 3000);
  REQUIRE(live.ok());
  outbox.MarkInFlight(*live);
  CHECK(Seqs(Take(outbox, 10)) == std::vector<uint64_t>{1, 2});
  // Its publish failed: now it goes with the backlog.
  outbox.Failed(*live);
  CHECK(Seqs(Take(outbox, 10)) == std::vector<uint64_t>{3});
}

TEST_CASE("beyond max_rows the oldest records are dropped and counted", "[outbox]") {
  Outbox outbox = MakeOutbox(OutboxLimits{5, 1 << 20, 86400});
  AddSamples(outbox, 1, 12);
  OutboxTotals t = outbox.totals();
  CHECK(t.rows == 5);
  CHECK(t.dropped == 7);
  CHECK(Seqs(Take(outbox, 10)) == std::vector<uint64_t>{8, 9, 10, 11, 12});
}

TEST_CASE("beyond max_bytes the oldest records are dropped and counted", "[outbox]") {
  Outbox outbox = MakeOutbox(OutboxLimits{1000, 250, 86400});
  AddSamples(outbox, 1, 10, std::string(100, 'x'));
  OutboxTotals t = outbox.totals();
  CHECK(t.rows == 2);
  CHECK(t.bytes == 200);
  CHECK(t.dropped == 8);
  CHECK(Seqs(Take(outbox, 10)) == std::vector<uint64_t>{9, 10});
}

TEST_CASE("records older than max_age_s are dropped and counted", "[outbox]") {
  Outbox outbox = MakeOutbox(OutboxLimits{1000, 1 << 20, 60});
  AddSamples(outbox, 1, 100);  // t0+1 s .. t0+100 s
  // Adding at t0+100 s keeps everything from t0+40 s on.
  CHECK(outbox.totals().rows == 61);
  CHECK(outbox.totals().dropped == 39);
  REQUIRE(outbox.Enforce(kT0 + 1000 * 1000).ok());  // far later: all too old
  CHECK(outbox.totals().rows == 0);
  CHECK(outbox.totals().dropped == 100);
}

TEST_CASE("acknowledged records pushed out by a cap are not counted as dropped", "[outbox]") {
  Outbox outbox = MakeOutbox(OutboxLimits{3, 1 << 20, 86400});
  auto ids = AddSamples(outbox, 1, 3);
  Take(outbox, 3);
  outbox.Acknowledged(ids[0]);
  outbox.Acknowledged(ids[1]);
  AddSamples(outbox, 4, 5);  // over the cap before any Commit
  CHECK(outbox.totals().dropped == 0);
  REQUIRE(outbox.Commit().ok());
  CHECK(outbox.totals().rows == 3);
  outbox.ConnectionLost();
  CHECK(Seqs(Take(outbox, 10)) == std::vector<uint64_t>{3, 4, 5});
}

TEST_CASE("the SQLite outbox keeps records and the drop count across a reopen", "[outbox]") {
  TempDir dir;
  std::string path = dir.File("bat.outbox.sqlite");
  int64_t last_id = 0;
  {
    auto storage = SqliteOutboxStorage::Open(path);
    INFO(storage.status().ToString());
    REQUIRE(storage.ok());
    Outbox outbox(std::move(storage).value(), OutboxLimits{4, 1 << 20, 86400});
    auto ids = AddSamples(outbox, 1, 6);  // 2 dropped
    last_id = ids.back();
    Take(outbox, 1);
    outbox.Acknowledged(ids[2]);  // seq 3
    REQUIRE(outbox.Commit().ok());
  }
  auto storage = SqliteOutboxStorage::Open(path);
  REQUIRE(storage.ok());
  Outbox outbox(std::move(storage).value(), OutboxLimits{4, 1 << 20, 86400});
  OutboxTotals t = outbox.totals();
  CHECK(t.rows == 3);
  CHECK(t.bytes == 3 * std::string("sample").size());
  CHECK(t.dropped == 2);
  auto records = Take(outbox, 10);
  CHECK(Seqs(records) == std::vector<uint64_t>{4, 5, 6});
  REQUIRE(!records.empty());
  CHECK(records[0].payload == "sample");
  CHECK(records[0].timestamp_ms == kT0 + 4000);
  // Ids keep going up after a reopen: never one handed out before.
  auto id = outbox.Add(7, kT0 + 7000, "sample", kT0 + 7000);
  REQUIRE(id.ok());
  CHECK(*id > last_id);
}

TEST_CASE("a second process cannot use an outbox file that is in use", "[outbox]") {
  TempDir dir;
  std::string path = dir.File("bat.outbox.sqlite");
  auto first = SqliteOutboxStorage::Open(path);
  REQUIRE(first.ok());
  auto second = SqliteOutboxStorage::Open(path);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().message().find(path) != std::string::npos);
}

TEST_CASE("outbox options are validated, naming the field and the rule", "[outbox]") {
  AgentOptions o;
  o.der_id = "bat-1";
  o.substation_id = "sub-1";
  o.nameplate.max_discharge_kw = 5;
  REQUIRE(o.Validate().ok());
  CHECK(o.outbox == "sqlite");  // the default: what the agent cannot send survives restarts
  AgentOptions bad = o;
  bad.outbox = "disk";
  CHECK(bad.Validate().message() == "outbox.store 'disk' must be sqlite or memory");
  bad = o;
  bad.outbox_max_rows = 0;
  CHECK(bad.Validate().message() == "outbox.max_rows 0 outside [1, 100000000]");
  bad = o;
  bad.outbox_max_bytes = 100;
  CHECK(bad.Validate().message().find("outbox.max_bytes 100") == 0);
  bad = o;
  bad.outbox_max_age_s = 10;
  CHECK(bad.Validate().message().find("outbox.max_age_s 10") == 0);
}

TEST_CASE("a demand-response agent's model options are validated with the agent's", "[outbox]") {
  AgentOptions o;
  o.der_id = "ci-1";
  o.substation_id = "sub-1";
  o.nameplate.type = derms::v1::CI_LOAD;
  o.nameplate.max_charge_kw = 200;
  REQUIRE(o.Validate().ok());
  o.ci_load.min_off_s = -5;
  CHECK(o.Validate().message() == "ci_load.min_off_s -5 outside [0, 86400]");
  o.nameplate.type = derms::v1::THERMOSTAT;  // the C&I options are not read for it
  CHECK(o.Validate().ok());
  o.nameplate.max_charge_kw = 0;
  o.nameplate.max_discharge_kw = 1;
  CHECK(o.Validate().message().find("max_charge_kw must be > 0") == 0);
}
