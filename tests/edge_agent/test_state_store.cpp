// The edge's persisted session counters: bd_seq survives restarts and goes up
// by one per connect; telemetry seq never repeats, even after a crash.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "edge_agent/agent/state_store.h"

using derms::edge::StateStore;
namespace fs = std::filesystem;

namespace {

const std::string kDer = "bat-1";

// A fresh directory under the temp directory, removed with its content on scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("derms_test_state_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }
  std::string StateFile() const { return (path_ / (kDer + ".state")).string(); }

 private:
  fs::path path_;
};

StateStore OpenOk(const TempDir& dir) {
  auto store = StateStore::Open(dir.path(), kDer);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(store).value();
}

uint64_t NextBdSeq(StateStore& store) {
  auto v = store.NextBdSeq();
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return v.value();
}

uint64_t NextSeq(StateStore& store) {
  auto v = store.NextSeq();
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return v.value();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

}  // namespace

TEST_CASE("a fresh state directory starts bd_seq and seq at 1", "[unit][state]") {
  TempDir dir;  // does not exist yet: Open creates it
  StateStore store = OpenOk(dir);
  CHECK(fs::is_directory(dir.path()));
  CHECK(store.bd_seq() == 0);
  CHECK(NextBdSeq(store) == 1);
  CHECK(store.bd_seq() == 1);
  CHECK(NextSeq(store) == 1);
  CHECK(NextSeq(store) == 2);
}

TEST_CASE("bd_seq survives a restart and goes up by one per connect", "[unit][state]") {
  TempDir dir;
  {
    StateStore store = OpenOk(dir);
    CHECK(NextBdSeq(store) == 1);
    CHECK(NextBdSeq(store) == 2);
  }
  {
    StateStore store = OpenOk(dir);
    CHECK(store.bd_seq() == 2);
    CHECK(NextBdSeq(store) == 3);
  }
  StateStore store = OpenOk(dir);
  CHECK(store.bd_seq() == 3);
  CHECK(NextBdSeq(store) == 4);
}

TEST_CASE("telemetry seq strictly increases across restarts and crashes", "[unit][state]") {
  TempDir dir;
  uint64_t last = 0;
  // Each "run" hands out a different number of seqs, then the process stops
  // without any shutdown step; the last runs hand out none at all.
  for (int run : {3, 300, 0, 1, 256, 0, 0, 700, 2}) {
    StateStore store = OpenOk(dir);
    for (int i = 0; i < run; ++i) {
      uint64_t seq = NextSeq(store);
      REQUIRE(seq > last);
      last = seq;
    }
  }
  StateStore store = OpenOk(dir);
  CHECK(NextSeq(store) > last);
}

TEST_CASE("a failed save of the seq block is an error and seq still never repeats after a restart",
          "[unit][state]") {
  TempDir dir;
  uint64_t last = 0;
  {
    StateStore store = OpenOk(dir);
    for (int i = 0; i < 256; ++i) last = NextSeq(store);  // the first reserved block, used up
    REQUIRE(last == 256);

    // The disk refuses the next reservation (a directory where the temp file goes).
    const std::string blocker = dir.StateFile() + ".tmp";
    fs::create_directory(blocker);
    auto failed = store.NextSeq();
    REQUIRE_FALSE(failed.ok());
    CHECK(failed.status().code() == "state_error");

    // The disk recovers; the agent carries on sending telemetry.
    fs::remove(blocker);
    last = NextSeq(store);
    CHECK(last > 256);
  }  // ... and the process crashes.
  StateStore store = OpenOk(dir);
  CHECK(NextSeq(store) > last);
}

TEST_CASE("bd_seq and seq are kept per DER", "[unit][state]") {
  TempDir dir;
  StateStore a = OpenOk(dir);
  CHECK(NextBdSeq(a) == 1);
  auto b = StateStore::Open(dir.path(), "pv-2");
  REQUIRE(b.ok());
  CHECK(b->bd_seq() == 0);
  auto next = b->NextBdSeq();
  REQUIRE(next.ok());
  CHECK(next.value() == 1);
}

TEST_CASE("a corrupted state file is a state_error naming the file", "[unit][state]") {
  for (const char* content :
       {"garbage", "", "bd_seq x seq_reserved 10\n", "seq_reserved 1 bd_seq 2\n",
        "bd_seq 3 seq_reserved 0\n", "bd_seq 3\n"}) {
    INFO("content: '" << content << "'");
    TempDir dir;
    fs::create_directories(dir.path());
    WriteFile(dir.StateFile(), content);
    auto store = StateStore::Open(dir.path(), kDer);
    REQUIRE_FALSE(store.ok());
    CHECK(store.status().code() == "state_error");
    CHECK_THAT(store.status().message(), Catch::Contains(dir.StateFile()));
  }
}

TEST_CASE("a state directory that cannot be created is a state_error naming it", "[unit][state]") {
  TempDir dir;
  fs::create_directories(dir.path());
  std::string blocker = dir.path() + "/not-a-dir";
  WriteFile(blocker, "x");
  auto store = StateStore::Open(blocker + "/state", kDer);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == "state_error");
  CHECK_THAT(store.status().message(), Catch::Contains(blocker));
}
