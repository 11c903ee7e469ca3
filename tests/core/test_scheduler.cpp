// The core: one scheduler for periodic work, topic routing, metrics.
#include <catch2/catch.hpp>
#include <vector>

#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/router.h"
#include "cloud_aggregator/core/scheduler.h"
#include "tests/support/module_fakes.h"

using derms::aggregator::Executor;
using derms::aggregator::Intake;
using derms::aggregator::Metrics;
using derms::aggregator::Module;
using derms::aggregator::Router;
using derms::aggregator::Scheduler;

namespace {
// Holds posted work until the test runs it: background work that finishes
// "later", on the test's word.
class ManualExecutor : public Executor {
 public:
  void Post(std::function<void()> work) override { work_.push_back(std::move(work)); }
  void RunAll() {
    auto work = std::move(work_);
    work_.clear();
    for (auto& w : work) w();
  }
  size_t pending() const { return work_.size(); }

 private:
  std::vector<std::function<void()>> work_;
};
}  // namespace

TEST_CASE("periodic jobs run once per period, once when behind, at start when asked",
          "[unit][core]") {
  Scheduler s;
  std::vector<int64_t> every_second, at_start, each_tick;
  s.Every("a", 1000, [&](int64_t now) { every_second.push_back(now); });
  s.Every(
      "b", 1000, [&](int64_t now) { at_start.push_back(now); }, true);
  s.Every("c", 0, [&](int64_t now) { each_tick.push_back(now); });
  s.Tick(0, 100);
  CHECK(every_second.empty());
  CHECK(at_start.size() == 1);
  s.Tick(999, 200);
  CHECK(every_second.empty());
  s.Tick(1000, 300);
  CHECK(every_second == std::vector<int64_t>{300});
  s.Tick(5500, 400);  // far behind: once, not four times
  CHECK(every_second.size() == 2);
  s.Tick(5600, 500);
  CHECK(every_second.size() == 2);
  s.Tick(6500, 600);
  CHECK(every_second.size() == 3);
  CHECK(each_tick.size() == 6);
}

TEST_CASE("background work runs off the loop, one run in flight, its completion on the loop",
          "[unit][core]") {
  ManualExecutor ex;
  Scheduler s(&ex);
  int worked = 0, completed = 0;
  s.EveryInBackground("bg", 1000, [&](int64_t) -> Scheduler::Completion {
    ++worked;
    return [&] { ++completed; };
  });
  s.Tick(0, 0);
  s.Tick(1000, 0);
  CHECK(ex.pending() == 1);
  s.Tick(2000, 0);  // still in flight: not posted again
  CHECK(ex.pending() == 1);
  CHECK(s.in_flight() == 1);
  ex.RunAll();
  CHECK(worked == 1);
  CHECK(completed == 0);  // completions wait for the loop
  s.Tick(2100, 0);
  CHECK(completed == 1);
  CHECK(s.in_flight() == 0);
  s.Tick(3000, 0);
  CHECK(ex.pending() == 1);
}

namespace {
class Recorder : public Module {
 public:
  explicit Recorder(std::vector<derms::topics::Kind> kinds) : kinds_(std::move(kinds)) {}
  const char* name() const override { return "recorder"; }
  std::vector<derms::topics::Kind> Topics() const override { return kinds_; }
  void OnMessage(const derms::aggregator::Inbound& m, int64_t) override {
    seen.push_back(m.parsed.id);
  }
  std::vector<std::string> seen;

 private:
  std::vector<derms::topics::Kind> kinds_;
};
}  // namespace

TEST_CASE("the router hands each kind to the module that declared it and rejects the rest",
          "[unit][core]") {
  Metrics metrics;
  Intake intake(metrics);
  Router router(intake);
  Recorder births({derms::topics::Kind::kDerBirth});
  Recorder again({derms::topics::Kind::kDerBirth});
  REQUIRE(router.Add(&births).ok());
  CHECK_FALSE(router.Add(&again).ok());  // one module per kind
  CHECK(router.Filters() == std::vector<std::string>{"derms/v1/der/+/birth"});

  auto m = derms::testing::Message("derms/v1/der/bat-1/birth", "x");
  router.Route(m, 0);
  CHECK(births.seen == std::vector<std::string>{"bat-1"});
  auto empty = derms::testing::Message("derms/v1/der/bat-1/birth", "");
  router.Route(empty, 0);
  auto other = derms::testing::Message("derms/v1/der/bat-1/telemetry", "x");
  router.Route(other, 0);
  auto bad = derms::testing::Message("elsewhere/x", "x");
  router.Route(bad, 0);
  auto snap = metrics.Snapshot(0);
  CHECK(snap.Value("messages_rejected") == 3);
  CHECK(snap.Value("messages_rejected_by_reason", "empty_payload") == 1);
  CHECK(snap.Value("messages_rejected_by_reason", "unexpected_topic") == 1);
  CHECK(snap.Value("messages_rejected_by_reason", "bad_topic") == 1);
}

TEST_CASE("a metrics snapshot is a copy: later updates do not change it", "[unit][core]") {
  Metrics metrics;
  auto& c = metrics.AddCounter("c", "a counter");
  auto& g = metrics.AddGauge("g", "a gauge");
  int collected = 0;
  metrics.AddCollector([&] { g.Set(++collected); });
  c.Add(2);
  auto first = metrics.Snapshot(10);
  c.Add(3);
  auto second = metrics.Snapshot(20);
  CHECK(first.Value("c") == 2);
  CHECK(first.Value("g") == 1);
  CHECK(second.Value("c") == 5);
  CHECK(second.Value("g") == 2);
  CHECK(second.taken_ms == 20);
  CHECK(second.Value("absent") == 0);
}
