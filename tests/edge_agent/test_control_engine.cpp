// The contract's control rules for one DER: apply within limits, clamp,
// reject invalid controls, idempotent replies, supersede, priority, expiry,
// schedules and cancel.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "edge_agent/control/control_engine.h"

using derms::edge::ControlEngine;
using derms::edge::PowerRange;
using derms::v1::Control;
using derms::v1::ControlResponse;
using derms::v1::ControlStatus;

namespace {

const std::string kDer = "bat-1";
constexpr int64_t kT0 = 1767225600000;  // 2026-01-01T00:00Z
constexpr int64_t kMinute = 60'000;
const PowerRange kRange{-5.0, 10.0};

struct IntervalSpec {
  int64_t start_ms;  // 0: on receipt / right after the previous interval
  uint32_t duration_s;
  double target_kw;
};

Control MakeControl(const std::string& command_id, int64_t issued_at_ms,
                    const std::vector<IntervalSpec>& intervals, int32_t priority = 0) {
  Control c;
  c.set_command_id(command_id);
  c.set_issued_at_ms(issued_at_ms);
  c.set_priority(priority);
  c.set_der_id(kDer);
  for (const auto& spec : intervals) {
    auto* in = c.add_intervals();
    in->set_start_ms(spec.start_ms);
    in->set_duration_s(spec.duration_s);
    in->set_target_kw(spec.target_kw);
  }
  return c;
}

// A plain setpoint starting on receipt, for ten minutes.
Control MakeSetpoint(const std::string& command_id, double target_kw, int64_t issued_at_ms = kT0,
                     int32_t priority = 0) {
  return MakeControl(command_id, issued_at_ms, {{0, 600, target_kw}}, priority);
}

std::string StatusName(ControlStatus s) { return derms::v1::ControlStatus_Name(s); }

// Checks the fields every response carries.
void CheckResponse(const ControlResponse& r, const std::string& command_id, ControlStatus status,
                   int64_t now_ms) {
  INFO("response: " << r.ShortDebugString());
  CHECK(r.command_id() == command_id);
  CHECK(StatusName(r.status()) == StatusName(status));
  CHECK(r.der_id() == kDer);
  CHECK(r.timestamp_ms() == now_ms);
}

// Requires exactly one response and checks it.
ControlResponse Single(const ControlEngine::Responses& out, const std::string& command_id,
                       ControlStatus status, int64_t now_ms) {
  REQUIRE(out.size() == 1);
  CheckResponse(out[0], command_id, status, now_ms);
  return out[0];
}

// Requires exactly one REJECTED response whose reason names `field`.
void RequireRejected(const ControlEngine::Responses& out, const std::string& command_id,
                     int64_t now_ms, const std::string& field) {
  ControlResponse r = Single(out, command_id, derms::v1::REJECTED, now_ms);
  CHECK_THAT(r.reason(), Catch::Contains(field));
  CHECK(r.applied_kw() == 0);
}

bool Same(const ControlResponse& a, const ControlResponse& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace

TEST_CASE("a setpoint within the device's range is APPLIED as given", "[unit][control]") {
  ControlEngine engine(kDer);
  CHECK_FALSE(engine.Setpoint().has_value());
  auto r =
      Single(engine.OnControl(MakeSetpoint("c1", 4.0), kT0, kRange), "c1", derms::v1::APPLIED, kT0);
  CHECK(r.applied_kw() == 4.0);
  CHECK(r.interval_index() == 0);
  CHECK(engine.Setpoint() == 4.0);
  CHECK(engine.ActiveCommandId() == "c1");
}

TEST_CASE("a setpoint exactly at a range limit is APPLIED, not clamped", "[unit][control]") {
  for (double limit : {kRange.max_kw, kRange.min_kw}) {
    ControlEngine engine(kDer);
    auto r = Single(engine.OnControl(MakeSetpoint("edge", limit), kT0, kRange), "edge",
                    derms::v1::APPLIED, kT0);
    CHECK(r.applied_kw() == limit);
    CHECK(engine.Setpoint() == limit);
  }
}

TEST_CASE("a setpoint above the maximum is CLAMPED to the maximum with a reason",
          "[unit][control]") {
  ControlEngine engine(kDer);
  auto r = Single(engine.OnControl(MakeSetpoint("c1", 25.0), kT0, kRange), "c1", derms::v1::CLAMPED,
                  kT0);
  CHECK(r.applied_kw() == 10.0);
  CHECK_FALSE(r.reason().empty());
  CHECK_THAT(r.reason(), Catch::Contains("10.000"));
  CHECK(engine.Setpoint() == 10.0);
}

TEST_CASE("a setpoint below the minimum is CLAMPED to the minimum with a reason",
          "[unit][control]") {
  ControlEngine engine(kDer);
  auto r = Single(engine.OnControl(MakeSetpoint("c1", -8.0), kT0, kRange), "c1", derms::v1::CLAMPED,
                  kT0);
  CHECK(r.applied_kw() == -5.0);
  CHECK_FALSE(r.reason().empty());
  CHECK(engine.Setpoint() == -5.0);
}

TEST_CASE("invalid controls are REJECTED with a reason naming the field", "[unit][control]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    const char* name;
    Control control;
    const char* field;
  };
  Control empty_intervals = MakeControl("c-empty", kT0, {});
  Control other_der = MakeSetpoint("c-other", 3.0);
  other_der.set_der_id("bat-2");
  Control empty_id = MakeSetpoint("", 3.0);
  const std::vector<Case> cases = {
      {"NaN target", MakeSetpoint("c-nan", nan), "target_kw"},
      {"+inf target", MakeSetpoint("c-inf", inf), "target_kw"},
      {"-inf target", MakeSetpoint("c-minf", -inf), "target_kw"},
      {"zero duration", MakeControl("c-zero", kT0, {{0, 0, 3.0}}), "duration_s"},
      {"no intervals", empty_intervals, "intervals"},
      {"empty command_id", empty_id, "command_id"},
      {"command_id over 128 characters", MakeSetpoint(std::string(129, 'c'), 3.0), "command_id"},
      {"another DER's der_id", other_der, "der_id"},
      {"overlapping intervals",
       MakeControl("c-overlap", kT0, {{kT0, 600, 1.0}, {kT0 + 5 * kMinute, 600, 2.0}}),
       "intervals[1]"},
      {"every interval over",
       MakeControl("c-over", kT0 - 10 * kMinute, {{kT0 - 10 * kMinute, 60, 1.0}}), "over"},
      {"a later schedule interval with NaN",
       MakeControl("c-nan2", kT0, {{0, 60, 1.0}, {0, 60, nan}}), "intervals[1].target_kw"},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      ControlEngine engine(kDer);
      RequireRejected(engine.OnControl(c.control, kT0, kRange), c.control.command_id(), kT0,
                      c.field);
      CHECK_FALSE(engine.Setpoint().has_value());
      CHECK(engine.ActiveCommandId().empty());
    }
  }
}

TEST_CASE("a rejected control leaves the control in force untouched", "[unit][control]") {
  ControlEngine engine(kDer);
  Single(engine.OnControl(MakeSetpoint("good", 4.0, kT0), kT0, kRange), "good", derms::v1::APPLIED,
         kT0);
  Control bad = MakeSetpoint("bad", std::nan(""), kT0 + 1000);
  RequireRejected(engine.OnControl(bad, kT0 + 1000, kRange), "bad", kT0 + 1000, "target_kw");
  CHECK(engine.Setpoint() == 4.0);
  CHECK(engine.ActiveCommandId() == "good");
}

TEST_CASE("a repeated command_id is answered with the earlier response and not applied again",
          "[unit][control]") {
  ControlEngine engine(kDer);
  auto first = engine.OnControl(MakeSetpoint("A", 4.0, kT0), kT0, kRange);
  REQUIRE(first.size() == 1);

  // Same id, even with other content, later: the identical earlier answer.
  auto again = engine.OnControl(MakeSetpoint("A", 9.0, kT0 + 5000), kT0 + 5000, kRange);
  REQUIRE(again.size() == 1);
  CHECK(Same(again[0], first[0]));
  CHECK(again[0].timestamp_ms() == kT0);
  CHECK(engine.Setpoint() == 4.0);
}

TEST_CASE("a repeated command_id after it was superseded gets SUPERSEDED and changes nothing",
          "[unit][control]") {
  ControlEngine engine(kDer);
  Single(engine.OnControl(MakeSetpoint("A", 4.0, kT0), kT0, kRange), "A", derms::v1::APPLIED, kT0);

  const int64_t t1 = kT0 + 10'000;
  auto b = engine.OnControl(MakeSetpoint("B", -2.0, t1), t1, kRange);
  REQUIRE(b.size() == 2);
  CheckResponse(b[0], "A", derms::v1::SUPERSEDED, t1);
  CheckResponse(b[1], "B", derms::v1::APPLIED, t1);

  const int64_t t2 = kT0 + 20'000;
  auto a_again = engine.OnControl(MakeSetpoint("A", 4.0, kT0), t2, kRange);
  REQUIRE(a_again.size() == 1);
  CHECK(Same(a_again[0], b[0]));  // A's last response: SUPERSEDED at t1
  CHECK(engine.Setpoint() == -2.0);
  CHECK(engine.ActiveCommandId() == "B");
}

TEST_CASE("a repeated command_id after it completed is not run again", "[unit][control]") {
  ControlEngine engine(kDer);
  engine.OnControl(MakeControl("A", kT0, {{0, 60, 4.0}}), kT0, kRange);
  auto done = engine.Advance(kT0 + kMinute, kRange);
  REQUIRE(done.size() == 1);
  auto again = engine.OnControl(MakeControl("A", kT0, {{0, 60, 4.0}}), kT0 + 2 * kMinute, kRange);
  REQUIRE(again.size() == 1);
  CHECK(Same(again[0], done[0]));
  CHECK_FALSE(engine.Setpoint().has_value());
}

TEST_CASE("a repeated rejected command_id is answered with the same rejection", "[unit][control]") {
  ControlEngine engine(kDer);
  auto first = engine.OnControl(MakeControl("A", kT0, {{0, 0, 4.0}}), kT0, kRange);
  REQUIRE(first.size() == 1);
  auto again = engine.OnControl(MakeControl("A", kT0, {{0, 0, 4.0}}), kT0 + 1000, kRange);
  REQUIRE(again.size() == 1);
  CHECK(Same(again[0], first[0]));
}

TEST_CASE("a newer issued_at_ms supersedes the control in force", "[unit][control]") {
  ControlEngine engine(kDer);
  engine.OnControl(MakeSetpoint("old", 4.0, kT0), kT0, kRange);
  const int64_t t1 = kT0 + 1000;
  auto out = engine.OnControl(MakeSetpoint("new", 6.0, t1), t1, kRange);
  REQUIRE(out.size() == 2);
  CheckResponse(out[0], "old", derms::v1::SUPERSEDED, t1);
  CHECK_THAT(out[0].reason(), Catch::Contains("new"));
  CheckResponse(out[1], "new", derms::v1::APPLIED, t1);
  CHECK(out[1].applied_kw() == 6.0);
  CHECK(engine.Setpoint() == 6.0);
  CHECK(engine.ActiveCommandId() == "new");
}

TEST_CASE("an older issued_at_ms arriving later is SUPERSEDED on arrival and not applied",
          "[unit][control]") {
  ControlEngine engine(kDer);
  engine.OnControl(MakeSetpoint("newer", 4.0, kT0), kT0, kRange);
  const int64_t t1 = kT0 + 1000;
  auto r = Single(engine.OnControl(MakeSetpoint("older", 7.0, kT0 - 5000), t1, kRange), "older",
                  derms::v1::SUPERSEDED, t1);
  CHECK_FALSE(r.reason().empty());
  CHECK(engine.Setpoint() == 4.0);
  CHECK(engine.ActiveCommandId() == "newer");
}

TEST_CASE("a lower priority control is REJECTED while a higher one is in force",
          "[unit][control]") {
  ControlEngine engine(kDer);
  engine.OnControl(MakeSetpoint("high", 4.0, kT0, /*priority=*/5), kT0, kRange);
  const int64_t t1 = kT0 + 1000;
  auto r = Single(engine.OnControl(MakeSetpoint("low", 7.0, t1, /*priority=*/1), t1, kRange), "low",
                  derms::v1::REJECTED, t1);
  CHECK_THAT(r.reason(), Catch::Contains("priority"));
  CHECK(engine.Setpoint() == 4.0);
  CHECK(engine.ActiveCommandId() == "high");

  // Once the high-priority control is over, a low-priority one is accepted.
  engine.Advance(kT0 + 10 * kMinute, kRange);
  const int64_t t2 = kT0 + 11 * kMinute;
  Single(engine.OnControl(MakeSetpoint("low2", 7.0, t2, 1), t2, kRange), "low2", derms::v1::APPLIED,
         t2);
}

TEST_CASE("a control ends COMPLETED when its interval is over and the device returns to default",
          "[unit][control]") {
  ControlEngine engine(kDer);
  engine.OnControl(MakeControl("c1", kT0, {{0, 60, 4.0}}), kT0, kRange);
  CHECK(engine.Advance(kT0 + 30'000, kRange).empty());
  CHECK(engine.Setpoint() == 4.0);
  CHECK(engine.Advance(kT0 + 59'999, kRange).empty());
  CHECK(engine.Setpoint() == 4.0);

  auto r = Single(engine.Advance(kT0 + kMinute, kRange), "c1", derms::v1::COMPLETED, kT0 + kMinute);
  CHECK(r.applied_kw() == 4.0);
  CHECK_FALSE(engine.Setpoint().has_value());
  CHECK(engine.ActiveCommandId().empty());
  CHECK(engine.Advance(kT0 + 2 * kMinute, kRange).empty());
}

TEST_CASE("a schedule answers each interval as it starts, clamping per interval",
          "[unit][control]") {
  ControlEngine engine(kDer);
  // First interval at an explicit start, the others right after the previous one.
  Control schedule = MakeControl("sched", kT0, {{kT0, 60, 4.0}, {0, 60, 25.0}, {0, 120, -2.0}});

  auto r0 = Single(engine.OnControl(schedule, kT0, kRange), "sched", derms::v1::APPLIED, kT0);
  CHECK(r0.interval_index() == 0);
  CHECK(r0.applied_kw() == 4.0);
  CHECK(engine.Setpoint() == 4.0);

  CHECK(engine.Advance(kT0 + 30'000, kRange).empty());

  auto r1 =
      Single(engine.Advance(kT0 + kMinute, kRange), "sched", derms::v1::CLAMPED, kT0 + kMinute);
  CHECK(r1.interval_index() == 1);
  CHECK(r1.applied_kw() == 10.0);
  CHECK_FALSE(r1.reason().empty());
  CHECK(engine.Setpoint() == 10.0);

  auto r2 = Single(engine.Advance(kT0 + 2 * kMinute, kRange), "sched", derms::v1::APPLIED,
                   kT0 + 2 * kMinute);
  CHECK(r2.interval_index() == 2);
  CHECK(r2.applied_kw() == -2.0);
  CHECK(engine.Setpoint() == -2.0);

  // The third interval lasts two minutes.
  CHECK(engine.Advance(kT0 + 3 * kMinute, kRange).empty());
  CHECK(engine.Setpoint() == -2.0);
  auto done = Single(engine.Advance(kT0 + 4 * kMinute, kRange), "sched", derms::v1::COMPLETED,
                     kT0 + 4 * kMinute);
  CHECK(done.interval_index() == 2);
  CHECK_FALSE(engine.Setpoint().has_value());
}

TEST_CASE("a control starting in the future is RECEIVED, then APPLIED when it starts",
          "[unit][control]") {
  ControlEngine engine(kDer);
  const int64_t start = kT0 + 5 * kMinute;
  auto r = Single(engine.OnControl(MakeControl("later", kT0, {{start, 60, 3.0}}), kT0, kRange),
                  "later", derms::v1::RECEIVED, kT0);
  CHECK(r.interval_index() == 0);
  CHECK_FALSE(engine.Setpoint().has_value());
  CHECK(engine.ActiveCommandId() == "later");

  CHECK(engine.Advance(start - 1, kRange).empty());
  CHECK_FALSE(engine.Setpoint().has_value());

  auto applied = Single(engine.Advance(start, kRange), "later", derms::v1::APPLIED, start);
  CHECK(applied.applied_kw() == 3.0);
  CHECK(engine.Setpoint() == 3.0);
}

TEST_CASE("between two schedule intervals the device is at its default", "[unit][control]") {
  ControlEngine engine(kDer);
  Control gap = MakeControl("gap", kT0, {{kT0, 60, 4.0}, {kT0 + 2 * kMinute, 60, 6.0}});
  Single(engine.OnControl(gap, kT0, kRange), "gap", derms::v1::APPLIED, kT0);

  CHECK(engine.Advance(kT0 + 90'000, kRange).empty());
  CHECK_FALSE(engine.Setpoint().has_value());
  CHECK(engine.ActiveCommandId() == "gap");

  auto r = Single(engine.Advance(kT0 + 2 * kMinute, kRange), "gap", derms::v1::APPLIED,
                  kT0 + 2 * kMinute);
  CHECK(r.interval_index() == 1);
  CHECK(engine.Setpoint() == 6.0);

  Single(engine.Advance(kT0 + 3 * kMinute, kRange), "gap", derms::v1::COMPLETED, kT0 + 3 * kMinute);
  CHECK_FALSE(engine.Setpoint().has_value());
}

TEST_CASE("a late Advance past the whole schedule completes it without running any interval",
          "[unit][control]") {
  ControlEngine engine(kDer);
  engine.OnControl(MakeControl("s", kT0, {{0, 60, 4.0}, {0, 60, 5.0}}), kT0, kRange);
  auto out = engine.Advance(kT0 + 10 * kMinute, kRange);
  REQUIRE(out.size() == 1);
  CheckResponse(out[0], "s", derms::v1::COMPLETED, kT0 + 10 * kMinute);
  CHECK_FALSE(engine.Setpoint().has_value());
}

TEST_CASE("Cancel ends the control in force with CANCELLED", "[unit][control]") {
  ControlEngine engine(kDer);
  engine.OnControl(MakeSetpoint("c1", 4.0), kT0, kRange);
  auto r = Single(engine.Cancel(kT0 + 1000, "return to default"), "c1", derms::v1::CANCELLED,
                  kT0 + 1000);
  CHECK(r.reason() == "return to default");
  CHECK_FALSE(engine.Setpoint().has_value());
  CHECK(engine.ActiveCommandId().empty());
  CHECK(engine.Cancel(kT0 + 2000, "again").empty());
  CHECK(engine.Advance(kT0 + 20 * kMinute, kRange).empty());  // no COMPLETED after a cancel
}

TEST_CASE("a schedule whose first intervals are over starts at the first live one",
          "[unit][control]") {
  ControlEngine engine(kDer);
  // Intervals [T0-3m, T0-2m), [T0-2m, T0-1m), [T0-1m, T0+1m): the third is live.
  Control late = MakeControl("late", kT0 - 3 * kMinute,
                             {{kT0 - 3 * kMinute, 60, 1.0}, {0, 60, 2.0}, {0, 120, 3.0}});
  auto r = Single(engine.OnControl(late, kT0, kRange), "late", derms::v1::APPLIED, kT0);
  CHECK(r.interval_index() == 2);
  CHECK(r.applied_kw() == 3.0);
  CHECK(engine.Setpoint() == 3.0);
  Single(engine.Advance(kT0 + kMinute, kRange), "late", derms::v1::COMPLETED, kT0 + kMinute);
}

TEST_CASE("a schedule whose live part starts later is RECEIVED naming the skipped intervals",
          "[unit][control]") {
  ControlEngine engine(kDer);
  Control late = MakeControl("late", kT0, {{kT0 - 2 * kMinute, 60, 1.0}, {kT0 + kMinute, 60, 2.0}});
  auto r = Single(engine.OnControl(late, kT0, kRange), "late", derms::v1::RECEIVED, kT0);
  CHECK(r.interval_index() == 1);
  CHECK_THAT(r.reason(), Catch::Contains("skipped"));
  CHECK_FALSE(engine.Setpoint().has_value());
  auto applied =
      Single(engine.Advance(kT0 + kMinute, kRange), "late", derms::v1::APPLIED, kT0 + kMinute);
  CHECK(applied.interval_index() == 1);
  CHECK(engine.Setpoint() == 2.0);
}

TEST_CASE("a generation limit caps export without setting it, and ends like any control",
          "[control]") {
  ControlEngine engine(kDer);
  Control cap = MakeSetpoint("cap-1", 3.5);
  cap.set_kind(derms::v1::CONTROL_KIND_GENERATION_LIMIT);
  auto out = engine.OnControl(cap, kT0, kRange);
  REQUIRE(out.size() == 1);
  CheckResponse(out[0], "cap-1", derms::v1::APPLIED, kT0);
  CHECK(out[0].applied_kw() == 3.5);
  CHECK_FALSE(engine.Setpoint().has_value());
  REQUIRE(engine.GenerationLimit().has_value());
  CHECK(*engine.GenerationLimit() == 3.5);

  // A cap above what the device can give now is not clamped: it only does
  // not bind yet.
  Control loose = MakeSetpoint("cap-2", 40.0, kT0 + 1);
  loose.set_kind(derms::v1::CONTROL_KIND_GENERATION_LIMIT);
  out = engine.OnControl(loose, kT0 + 1, kRange);
  REQUIRE(out.size() == 2);
  CheckResponse(out[1], "cap-2", derms::v1::APPLIED, kT0 + 1);
  CHECK(*engine.GenerationLimit() == 40.0);

  out = engine.Advance(kT0 + 11 * kMinute, kRange);
  REQUIRE(out.size() == 1);
  CheckResponse(out[0], "cap-2", derms::v1::COMPLETED, kT0 + 11 * kMinute);
  CHECK_FALSE(engine.GenerationLimit().has_value());
}

TEST_CASE("a negative generation limit or an unknown control kind is rejected with the field",
          "[control]") {
  ControlEngine engine(kDer);
  Control negative = MakeSetpoint("cap-neg", -1.0);
  negative.set_kind(derms::v1::CONTROL_KIND_GENERATION_LIMIT);
  auto out = engine.OnControl(negative, kT0, kRange);
  REQUIRE(out.size() == 1);
  CheckResponse(out[0], "cap-neg", derms::v1::REJECTED, kT0);
  CHECK_THAT(out[0].reason(), Catch::Contains("intervals[0].target_kw -1 is below 0"));

  Control unknown = MakeSetpoint("kind-9", 1.0);
  unknown.set_kind(static_cast<derms::v1::ControlKind>(9));
  out = engine.OnControl(unknown, kT0, kRange);
  REQUIRE(out.size() == 1);
  CheckResponse(out[0], "kind-9", derms::v1::REJECTED, kT0);
  CHECK_THAT(out[0].reason(), Catch::Contains("kind 9 is not a known control kind"));
  CHECK_FALSE(engine.GenerationLimit().has_value());
  CHECK_FALSE(engine.Setpoint().has_value());
}

TEST_CASE("Refuse ends the control the device refused with REJECTED, also for repeats",
          "[unit][control]") {
  ControlEngine engine(kDer);
  engine.OnControl(MakeSetpoint("c1", 4.0), kT0, kRange);
  auto r = Single(engine.Refuse(kT0 + 10, "device refused: Modbus exception 3"), "c1",
                  derms::v1::REJECTED, kT0 + 10);
  CHECK(r.reason() == "device refused: Modbus exception 3");
  CHECK_FALSE(engine.Setpoint().has_value());
  // The same command again is answered as before, never applied.
  auto again = Single(engine.OnControl(MakeSetpoint("c1", 4.0), kT0 + 20, kRange), "c1",
                      derms::v1::REJECTED, kT0 + 10);
  CHECK(again.reason() == r.reason());
  CHECK_FALSE(engine.Setpoint().has_value());
  CHECK(engine.Refuse(kT0 + 30, "nothing in force").empty());
}
