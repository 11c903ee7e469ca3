#include <catch2/catch.hpp>

#include "cloud_aggregator/core/metrics.h"

namespace derms::aggregator {
namespace {

TEST_CASE("A snapshot holds every family's value at the time it was taken") {
  Metrics m;
  Counter& accepted = m.AddCounter("messages_accepted", "messages taken in");
  Gauge& held = m.AddGauge("records_held", "records not yet committed");
  LabeledCounter& rejected = m.AddLabeledCounter("rejected", "reason", "rejections by reason");
  Info& error = m.AddInfo("last_error", "the store's last error");
  int collected = 0;
  m.AddCollector([&] {
    ++collected;
    held.Set(7);
  });
  accepted.Add(3);
  rejected.Add("bad_value");
  rejected.Add("bad_value");
  rejected.Add("unknown_der");
  error.Set("disk full");

  MetricsSnapshot s = m.Snapshot(1234);
  CHECK(collected == 1);
  CHECK(s.taken_ms == 1234);
  CHECK(s.Value("messages_accepted") == 3);
  CHECK(s.Value("records_held") == 7);
  CHECK(s.Value("rejected", "bad_value") == 2);
  CHECK(s.Value("rejected", "unknown_der") == 1);
  CHECK(s.Value("rejected", "never_seen") == 0);
  CHECK(s.Value("no_such_family") == 0);
  CHECK(s.Text("last_error") == "disk full");
  CHECK(s.Text("no_such_info").empty());

  REQUIRE(s.families.size() == 3);  // info values are not families
  CHECK(s.families[0].name() == "messages_accepted");
  CHECK(s.families[0].about->help == "messages taken in");
  CHECK(s.families[1].about->type == MetricFamilyInfo::Type::kGauge);
  CHECK(s.families[2].about->label == "reason");

  // Later changes reach the next snapshot, never one already taken.
  accepted.Add();
  rejected.Add("bad_value");
  MetricsSnapshot later = m.Snapshot(2000);
  CHECK(s.Value("messages_accepted") == 3);
  CHECK(s.Value("rejected", "bad_value") == 2);
  CHECK(later.Value("messages_accepted") == 4);
  CHECK(later.Value("rejected", "bad_value") == 3);
  // Both share the families' descriptions rather than copy them.
  CHECK(later.families[0].about == s.families[0].about);
}

}  // namespace
}  // namespace derms::aggregator
