// The Prometheus renderer of the metrics registry, and the module that
// writes it to node_exporter's textfile: exact exposition text, the file
// replaced whole each period, a missing directory refused at start and a
// failed write counted, with no broker and a stepped clock.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/scheduler.h"
#include "cloud_aggregator/modules/prometheus/prometheus_module.h"
#include "tests/support/module_fakes.h"

namespace fs = std::filesystem;
using derms::aggregator::Metrics;
using derms::aggregator::PrometheusModule;
using derms::aggregator::PrometheusOptions;
using derms::aggregator::RenderPrometheus;

namespace {

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  ("derms_prometheus_" + std::to_string(::getpid()) + "_" +
                   std::to_string(reinterpret_cast<uintptr_t>(this)));
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

TEST_CASE("the metrics registry renders as Prometheus text exposition") {
  Metrics metrics;
  metrics.AddCounter("messages_accepted", "messages taken in").Add(42);
  metrics.AddGauge("ders_online", "DERs online now").Set(2.5);
  auto& rejected = metrics.AddLabeledCounter("messages_rejected_by_reason", "reason",
                                             "refused messages, by rule");
  rejected.Add("no_birth", 3);
  rejected.Add("bad \"id\"\n", 1);
  metrics.AddInfo("storage_last_error", "why").Set("disk full");
  metrics.AddInfo("quiet", "nothing to say");

  CHECK(RenderPrometheus(metrics.Snapshot(0)) ==
        "# HELP derms_aggregator_messages_accepted_total messages taken in\n"
        "# TYPE derms_aggregator_messages_accepted_total counter\n"
        "derms_aggregator_messages_accepted_total 42\n"
        "# HELP derms_aggregator_ders_online DERs online now\n"
        "# TYPE derms_aggregator_ders_online gauge\n"
        "derms_aggregator_ders_online 2.5\n"
        "# HELP derms_aggregator_messages_rejected_by_reason_total refused messages, by rule\n"
        "# TYPE derms_aggregator_messages_rejected_by_reason_total counter\n"
        "derms_aggregator_messages_rejected_by_reason_total{reason=\"bad \\\"id\\\"\\n\"} 1\n"
        "derms_aggregator_messages_rejected_by_reason_total{reason=\"no_birth\"} 3\n"
        "# HELP derms_aggregator_quiet_info quiet (the text in the label; absent when none)\n"
        "# TYPE derms_aggregator_quiet_info gauge\n"
        "# HELP derms_aggregator_storage_last_error_info storage_last_error (the text in the "
        "label; absent when none)\n"
        "# TYPE derms_aggregator_storage_last_error_info gauge\n"
        "derms_aggregator_storage_last_error_info{text=\"disk full\"} 1\n");
}

TEST_CASE("the prometheus module replaces its textfile each period and counts failures") {
  TempDir dir;
  derms::testing::FakeOutbox outbox;
  derms::testing::FakeSink sink;
  derms::testing::SteppedTime time(1'800'000'000'000);
  Metrics metrics;
  derms::aggregator::Intake intake(metrics);
  derms::aggregator::ModulePorts ports{outbox, sink, time, intake, metrics};

  SECTION("a textfile in a directory that does not exist is refused, naming the key") {
    PrometheusOptions o;
    o.textfile = (dir.path / "missing" / "derms.prom").string();
    auto m = PrometheusModule::Create(o, ports);
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().message().find("prometheus.textfile") != std::string::npos);
  }

  SECTION("written at start and every interval, whole; a failed write is counted") {
    PrometheusOptions o;
    o.textfile = (dir.path / "derms.prom").string();
    o.interval_s = 15;
    auto m = PrometheusModule::Create(o, ports);
    REQUIRE(m.ok());
    derms::aggregator::Scheduler scheduler;  // no executor: the write runs inline
    (*m)->AddJobs(scheduler);
    intake.Accept();
    scheduler.Tick(time.MonotonicMs(), time.NowMs());  // renders and writes
    scheduler.Tick(time.MonotonicMs(), time.NowMs());  // counts the write
    std::string first = ReadAll(o.textfile);
    CHECK(first.find("derms_aggregator_messages_accepted_total 1\n") != std::string::npos);
    CHECK(metrics.Snapshot(0).Value("prometheus_writes") == 1);

    intake.Accept();
    time.Advance(14'000);
    scheduler.Tick(time.MonotonicMs(), time.NowMs());
    CHECK(ReadAll(o.textfile) == first);  // not yet due
    time.Advance(1'000);
    scheduler.Tick(time.MonotonicMs(), time.NowMs());
    scheduler.Tick(time.MonotonicMs(), time.NowMs());
    std::string second = ReadAll(o.textfile);
    CHECK(second.find("derms_aggregator_messages_accepted_total 2\n") != std::string::npos);
    CHECK(second.find("derms_aggregator_prometheus_writes_total 1\n") != std::string::npos);
    // No temporary file is left beside it.
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);

    // The directory goes away: the next write fails, is counted, and the
    // module goes on.
    fs::remove_all(dir.path);
    time.Advance(15'000);
    scheduler.Tick(time.MonotonicMs(), time.NowMs());
    scheduler.Tick(time.MonotonicMs(), time.NowMs());
    auto snap = metrics.Snapshot(0);
    CHECK(snap.Value("prometheus_write_errors") == 1);
    CHECK(snap.Value("prometheus_writes") == 2);
  }
}
