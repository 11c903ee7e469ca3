// Charging at lowest cost through a real Mosquitto, in simulated time: a
// price forecast in, a schedule request answered with the cheapest schedule,
// the schedule carried out by a simulated EV charger's edge agent, and a
// newer schedule superseding an older one.
#include <catch2/catch.hpp>

#include "tests/support/mosquitto_broker.h"
#include "tests/support/stack.h"

using namespace derms;
using namespace derms::testing;

namespace {

constexpr int64_t kMinuteMs = 60 * 1000;
constexpr int64_t kSlotMs = 5 * kMinuteMs;

// 24 five-minute prices from `start_ms`; slots 6, 7, 15 and 16 are cheap.
v1::PriceForecast Prices(int64_t start_ms, int64_t issued_ms) {
  v1::PriceForecast f;
  f.set_node("NODE-E");
  f.set_issued_ms(issued_ms);
  f.set_kind(v1::SHORT_TERM);
  for (int i = 0; i < 24; ++i) {
    auto* iv = f.add_intervals();
    iv->set_start_ms(start_ms + i * kSlotMs);
    iv->set_duration_s(300);
    bool cheap = i == 6 || i == 7 || i == 15 || i == 16;
    iv->set_price_per_mwh(cheap ? 20 + i : 80 + (i * 7) % 40);
  }
  return f;
}

bool InCheapSlot(int64_t t_ms, int64_t start_ms, int64_t tolerance_ms) {
  for (int i : {6, 7, 15, 16}) {
    int64_t from = start_ms + i * kSlotMs - tolerance_ms;
    int64_t to = start_ms + (i + 1) * kSlotMs + tolerance_ms;
    if (t_ms >= from && t_ms < to) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("a schedule request is answered with the cheapest schedule and an EV charges by it",
          "[integration][schedule]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  TempDir dir;
  // 21:00 UTC in simulated time, 10 simulated minutes per wall second: the
  // simulated EV (longitude 0) is plugged in for the evening.
  int64_t day_ms = WallNowMs() / 86400000 * 86400000;
  Clock clock(600, WallNowMs(), day_ms + 21 * 3600 * 1000);
  auto options = AggregatorOptionsFor((*broker)->uri(), dir);
  options.schedule.nodes["sub-e"] = "NODE-E";
  AggregatorThread agg(options, clock);
  auto o = AgentOptionsFor((*broker)->uri(), "ev-1", v1::EV_CHARGER, "sub-e", dir / "state");
  o.telemetry_interval_s = 60;
  std::vector<std::unique_ptr<edge::EdgeAgent>> agents;
  agents.push_back(MakeAgent(o, edge::MakeSimulatedDevice(o.nameplate, 7, clock.NowMs())));
  AgentsThread fleet(std::move(agents), clock);
  std::string db = agg->db_path();
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db, "SELECT COUNT(*) FROM telemetry WHERE der_id='ev-1'") > 0;
  }));

  // The window: two hours from the next five-minute boundary after a margin.
  int64_t start_ms = (clock.NowMs() + 10 * kMinuteMs) / kSlotMs * kSlotMs;
  int64_t ready_by_ms = start_ms + 24 * kSlotMs;
  TestClient user((*broker)->uri(), {"me/replies", topics::ScheduleResult("s-2")});
  REQUIRE(
      user.Publish(topics::PriceForecast("NODE-E"), codec::ToJson(Prices(start_ms, clock.NowMs())))
          .ok());

  // 2.5 kWh at 92 % takes 2.72 kWh from the grid: 16.3 minutes at 10 kW,
  // which the four cheap slots hold. A first request is superseded by a
  // second for the same DER.
  auto request = [&](const std::string& id) {
    return fmt::format(R"({{"request_id":"{}","der_id":"ev-1","max_charge_kw":10,"energy_kwh":2.5,)"
                       R"("efficiency":0.92,"earliest_start_ms":"{}","ready_by_ms":"{}"}})",
                       id, start_ms, ready_by_ms);
  };
  REQUIRE(user.Publish(topics::ScheduleRequest(), request("s-1"), false, "me/replies", "c-1").ok());
  auto first = user.Next("me/replies");
  REQUIRE(first);
  CHECK(first->correlation_data == "c-1");
  REQUIRE(user.Publish(topics::ScheduleRequest(), request("s-2"), false, "me/replies", "c-2").ok());
  auto reply = user.Next("me/replies");
  REQUIRE(reply);
  v1::ScheduleResult result;
  REQUIRE(codec::ParseJson(reply->payload, "result", &result).ok());
  INFO(reply->payload);
  CHECK(result.request_id() == "s-2");
  CHECK(result.status() == v1::SCHEDULE_SOLVED);
  CHECK(result.node() == "NODE-E");
  CHECK(result.energy_kwh() == Approx(2.5));
  CHECK(result.shortfall_kwh() == Approx(0).margin(1e-9));
  CHECK(result.cost() < result.immediate_cost());
  CHECK(result.command_id() == "sch-s-2");
  REQUIRE(result.slots_size() == 24);
  for (int i = 0; i < 24; ++i) {
    bool cheap = i == 6 || i == 7 || i == 15 || i == 16;
    if (!cheap) CHECK(result.slots(i).power_kw() == 0);
  }
  // The edge agent accepted it: the result is published again, delivered.
  auto delivered = user.Next(topics::ScheduleResult("s-2"), [](const mqtt::Message& m) {
    v1::ScheduleResult r;
    return codec::ParseJson(m.payload, "r", &r).ok() && r.status() == v1::SCHEDULE_DELIVERED;
  });
  REQUIRE(delivered);
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db,
                    "SELECT COUNT(*) FROM responses WHERE command_id='sch-s-1' AND "
                    "status='SUPERSEDED'") == 1;
  }));
  REQUIRE(QueryInt(db,
                   "SELECT status = 'SCHEDULE_DELIVERED' FROM schedule_requests WHERE "
                   "request_id='s-2'") == 1);
  // A grid dispatch at the EV's substation leaves the scheduled EV alone:
  // it would only refuse a lower-priority setpoint, and releasing it would
  // cancel the schedule.
  v1::GridStatus grid;
  grid.set_load_kw(1010);
  grid.set_supply_kw(1000);
  grid.set_frequency_hz(60);
  REQUIRE(user.Publish(topics::GridStatus("sub-e"), codec::ToJson(grid)).ok());
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db, "SELECT COUNT(*) FROM dispatch_runs WHERE vder_id='sub-e'") == 1;
  }));
  CHECK(QueryInt(db, "SELECT members_active FROM dispatch_runs WHERE vder_id='sub-e'") == 0);
  CHECK(QueryInt(db, "SELECT COUNT(*) FROM controls WHERE der_id='ev-1' AND run_id > 0") == 0);

  // Fetched again later: a request carrying only its id.
  REQUIRE(user.Publish(topics::ScheduleRequest(), R"({"request_id":"s-2"})", false, "me/replies",
                       "c-again")
              .ok());
  auto again = user.Next("me/replies");
  REQUIRE(again);
  CHECK(again->correlation_data == "c-again");
  v1::ScheduleResult fetched;
  REQUIRE(codec::ParseJson(again->payload, "result", &fetched).ok());
  CHECK(fetched.status() == v1::SCHEDULE_DELIVERED);
  CHECK(fetched.cost() == Approx(result.cost()));
  // Its lifecycle: received, solved, delivered.
  CHECK(QueryInt(db,
                 "SELECT group_concat(status, ' ') = 'SCHEDULE_RECEIVED SCHEDULE_SOLVED "
                 "SCHEDULE_DELIVERED' FROM (SELECT status FROM schedule_events WHERE "
                 "request_id='s-2' ORDER BY rowid)") == 1);

  // Requests that cannot be served are answered, with the field or the
  // missing prices named, and kept with their status.
  auto failed = [&](const std::string& body) {
    REQUIRE(user.Publish(topics::ScheduleRequest(), body, false, "me/replies", "c-x").ok());
    auto m = user.Next("me/replies");
    REQUIRE(m);
    v1::ScheduleResult r;
    REQUIRE(codec::ParseJson(m->payload, "result", &r).ok());
    CHECK(r.status() == v1::SCHEDULE_FAILED);
    return r.reason();
  };
  CHECK_THAT(failed(fmt::format(R"({{"request_id":"bad-1","node":"NOWHERE","max_charge_kw":7,)"
                                R"("energy_kwh":5,"earliest_start_ms":"{}","ready_by_ms":"{}"}})",
                                start_ms, ready_by_ms)),
             Catch::Contains("NOWHERE"));
  CHECK_THAT(failed(fmt::format(R"({{"request_id":"bad-2","node":"NODE-E","max_charge_kw":0,)"
                                R"("energy_kwh":5,"earliest_start_ms":"{}","ready_by_ms":"{}"}})",
                                start_ms, ready_by_ms)),
             Catch::Contains("max_charge_kw"));
  CHECK_THAT(failed(fmt::format(R"({{"request_id":"bad-3","node":"NODE-E","max_charge_kw":7,)"
                                R"("energy_kwh":5,"earliest_start_ms":"{}","ready_by_ms":"{}"}})",
                                start_ms, ready_by_ms + 3600 * 1000)),
             Catch::Contains("missing"));
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(db, "SELECT COUNT(*) FROM schedule_requests WHERE status='SCHEDULE_FAILED'") ==
           3;
  }));

  // Two devices behind one 10 kW connection: never more than 10 kW together.
  REQUIRE(
      user.Publish(topics::ScheduleRequest(),
                   fmt::format(R"({{"request_id":"site-1","node":"NODE-E","import_limit_kw":10,)"
                               R"("execute":false,"devices":[)"
                               R"({{"max_charge_kw":10,"energy_kwh":1.2,"earliest_start_ms":"{0}",)"
                               R"("ready_by_ms":"{1}"}},)"
                               R"({{"max_charge_kw":10,"energy_kwh":1.2,"earliest_start_ms":"{0}",)"
                               R"("ready_by_ms":"{1}"}}]}})",
                               start_ms, ready_by_ms),
                   false, "me/replies", "c-site")
          .ok());
  auto site = user.Next("me/replies");
  REQUIRE(site);
  v1::ScheduleResult shared;
  REQUIRE(codec::ParseJson(site->payload, "result", &shared).ok());
  INFO(site->payload);
  CHECK(shared.status() == v1::SCHEDULE_SOLVED);
  REQUIRE(shared.devices_size() == 2);
  CHECK(shared.energy_kwh() == Approx(2.4));
  for (int i = 0; i < 24; ++i) {
    double together = shared.devices(0).slots(i).power_kw() + shared.devices(1).slots(i).power_kw();
    CHECK(together <= 10 + 1e-9);
  }

  // Two simulated hours later: charging happened only in the cheap slots,
  // and the state of charge rose by the energy asked for (2.5 of 40 kWh).
  REQUIRE(WaitFor(
      [&] {
        REQUIRE(agg->FlushStore().ok());
        return QueryInt(db, fmt::format("SELECT COUNT(*) FROM telemetry WHERE der_id='ev-1' AND "
                                        "timestamp_ms > {}",
                                        ready_by_ms + 2 * kMinuteMs)) > 0;
      },
      std::chrono::seconds(40)));
  fleet.Stop();
  REQUIRE(agg->FlushStore().ok());
  sqlite3* conn = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(conn,
                             "SELECT timestamp_ms, active_power_kw, soc_pct FROM telemetry "
                             "WHERE der_id='ev-1' ORDER BY timestamp_ms",
                             -1, &stmt, nullptr) == SQLITE_OK);
  int charging_in_cheap = 0, charging_elsewhere = 0;
  double soc_at_start = -1, soc_at_end = -1;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    int64_t t = sqlite3_column_int64(stmt, 0);
    double kw = sqlite3_column_double(stmt, 1);
    double soc = sqlite3_column_double(stmt, 2);
    // No charging in slots 0-5 nor after slot 16: samples there read the
    // state of charge before and after the schedule's charging exactly
    // (before start_ms the EV still charged on its own).
    if (t >= start_ms && t < start_ms + 6 * kSlotMs && soc_at_start < 0) soc_at_start = soc;
    if (t >= start_ms + 17 * kSlotMs + kMinuteMs && t <= ready_by_ms) soc_at_end = soc;
    if (t <= start_ms || t >= ready_by_ms || kw > -1) continue;
    // A sample may lag the switch by a tick or two of the agent, more on a
    // loaded machine.
    (InCheapSlot(t, start_ms, kMinuteMs) ? charging_in_cheap : charging_elsewhere)++;
  }
  sqlite3_finalize(stmt);
  sqlite3_close(conn);
  CHECK(charging_in_cheap >= 10);
  CHECK(charging_elsewhere == 0);
  REQUIRE(soc_at_start >= 0);
  REQUIRE(soc_at_end >= 0);
  CHECK(soc_at_end - soc_at_start == Approx(2.5 / 40 * 100).margin(1.0));
}
