// The control ledger (sent, latest, in force) and availability holds.
#include <catch2/catch.hpp>
#include <random>

#include "cloud_aggregator/controls/availability.h"
#include "cloud_aggregator/controls/control_ledger.h"

using derms::controls::AvailabilityHolds;
using derms::controls::ControlLedger;
using derms::controls::Hold;
using derms::controls::SentControl;
namespace v1 = derms::v1;

namespace {
SentControl Control(const std::string& id, const std::string& der, double kw, int64_t ends_ms,
                    int64_t run_id = 1) {
  return SentControl{id, der, run_id, 0, kw, 0, ends_ms};
}
}  // namespace

TEST_CASE("an accepted latest control is in force; a clamped one at what the DER holds",
          "[unit][controls]") {
  ControlLedger l;
  l.Sent(Control("c1", "bat-1", 5.0, 10000));
  REQUIRE(l.InForceFor("bat-1", 0) == nullptr);
  REQUIRE(l.OnAnswer("bat-1", "c1", v1::APPLIED, 0) != nullptr);
  REQUIRE(l.InForceFor("bat-1", 0) != nullptr);
  CHECK(l.InForceFor("bat-1", 0)->kw == 5.0);
  CHECK(l.InForceFor("bat-1", 0)->applied);
  l.Sent(Control("c2", "bat-1", 8.0, 10000));
  l.OnAnswer("bat-1", "c2", v1::CLAMPED, 6.5);
  CHECK(l.InForceFor("bat-1", 0)->command_id == "c2");
  CHECK(l.InForceFor("bat-1", 0)->kw == 6.5);
  CHECK_FALSE(l.InForceFor("bat-1", 0)->applied);
  CHECK(l.CheckInvariants().empty());
}

TEST_CASE("a refused newer control leaves the older one in force; a refused one in force ends",
          "[unit][controls]") {
  ControlLedger l;
  l.Sent(Control("c1", "bat-1", 5.0, 10000));
  l.OnAnswer("bat-1", "c1", v1::APPLIED, 0);
  l.Sent(Control("c2", "bat-1", 9.0, 10000));
  l.OnAnswer("bat-1", "c2", v1::REJECTED, 0);
  REQUIRE(l.InForceFor("bat-1", 0) != nullptr);
  CHECK(l.InForceFor("bat-1", 0)->command_id == "c1");
  // The DER later says the first is over (superseded by its own schedule).
  l.OnAnswer("bat-1", "c1", v1::SUPERSEDED, 0);
  CHECK(l.InForceFor("bat-1", 0) == nullptr);
  CHECK(l.CheckInvariants().empty());
}

TEST_CASE("a late acceptance of an older control never puts it back in force", "[unit][controls]") {
  ControlLedger l;
  l.Sent(Control("c1", "bat-1", 5.0, 10000));
  l.Sent(Control("c2", "bat-1", 7.0, 10000));
  l.OnAnswer("bat-1", "c1", v1::APPLIED, 0);  // not the latest
  CHECK(l.InForceFor("bat-1", 0) == nullptr);
  l.OnAnswer("bat-1", "c2", v1::APPLIED, 0);
  l.Release("bat-1");                         // told to return to its default
  l.OnAnswer("bat-1", "c2", v1::APPLIED, 0);  // redelivered
  CHECK(l.InForceFor("bat-1", 0) == nullptr);
  l.Sent(Control("c3", "bat-1", 3.0, 10000));
  l.Yield("bat-1");  // a schedule took it over
  l.OnAnswer("bat-1", "c3", v1::RECEIVED, 0);
  CHECK(l.InForceFor("bat-1", 0) == nullptr);
  CHECK(l.CheckInvariants().empty());
}

TEST_CASE("answers from another DER or to unknown commands change nothing", "[unit][controls]") {
  ControlLedger l;
  l.Sent(Control("c1", "bat-1", 5.0, 10000));
  CHECK(l.OnAnswer("bat-2", "c1", v1::APPLIED, 0) == nullptr);
  CHECK(l.OnAnswer("bat-1", "nope", v1::APPLIED, 0) == nullptr);
  CHECK(l.InForceFor("bat-1", 0) == nullptr);
  CHECK(l.InForceFor("bat-2", 0) == nullptr);
}

TEST_CASE("controls are forgotten a minute after they end, in-force entries when they end",
          "[unit][controls]") {
  ControlLedger l;
  l.Sent(Control("c1", "bat-1", 5.0, 10000));
  l.OnAnswer("bat-1", "c1", v1::APPLIED, 0);
  CHECK(l.InForceFor("bat-1", 9999) != nullptr);
  CHECK(l.InForceFor("bat-1", 10000) == nullptr);  // ended
  l.ForgetEnded(10001);
  CHECK(l.in_force_size() == 0);
  CHECK(l.sent_size() == 1);  // late answers still count
  CHECK(l.OnAnswer("bat-1", "c1", v1::COMPLETED, 0) != nullptr);
  l.ForgetEnded(10000 + ControlLedger::kLateAnswerMs + 1);
  CHECK(l.sent_size() == 0);
  CHECK(l.OnAnswer("bat-1", "c1", v1::COMPLETED, 0) == nullptr);
  CHECK(l.CheckInvariants().empty());
}

TEST_CASE("the ledger's invariants hold under random sends, answers, releases and sweeps",
          "[unit][controls]") {
  std::mt19937 rng(7);
  ControlLedger l;
  const v1::ControlStatus statuses[] = {v1::RECEIVED,  v1::APPLIED,    v1::CLAMPED,   v1::REJECTED,
                                        v1::CANCELLED, v1::SUPERSEDED, v1::COMPLETED, v1::EXPIRED};
  int64_t now_ms = 0;
  int next = 0;
  std::vector<std::pair<std::string, std::string>> sent;  // (command, der)
  for (int step = 0; step < 20000; ++step) {
    now_ms += rng() % 500;
    std::string der = "der-" + std::to_string(rng() % 8);
    switch (rng() % 6) {
      case 0:
      case 1: {
        std::string id = "c" + std::to_string(next++);
        l.Sent(Control(id, der, 1.0, now_ms + 1000 + rng() % 60000));
        sent.emplace_back(id, der);
        break;
      }
      case 2:
      case 3: {
        if (sent.empty()) break;
        const auto& [id, owner] = sent[rng() % sent.size()];
        v1::ControlStatus st = statuses[rng() % 8];
        l.OnAnswer(owner, id, st, 0.5);
        const auto* f = l.InForceFor(owner, now_ms);
        // What the DER follows is never a control it refused last.
        if (f != nullptr && f->command_id == id) REQUIRE(derms::controls::Accepts(st));
        break;
      }
      case 4:
        l.Release(der);
        REQUIRE(l.InForceFor(der, now_ms) == nullptr);
        break;
      default:
        l.ForgetEnded(now_ms);
    }
    INFO("step " << step);
    REQUIRE(l.CheckInvariants().empty());
  }
}

TEST_CASE("availability holds: the longest hold counts, each holder releases its own",
          "[unit][controls]") {
  AvailabilityHolds h;
  h.Place("ev-1", Hold{"charging", 5000, "following charging schedule 'a'"});
  h.Place("ev-1", Hold{"maintenance", 9000, "inverter replacement"});
  REQUIRE(h.Find("ev-1", 0) != nullptr);
  CHECK(h.Find("ev-1", 0)->holder == "maintenance");
  h.Release("ev-1", "maintenance");
  CHECK(h.Find("ev-1", 0)->holder == "charging");
  CHECK(h.Held("ev-1", 4999));
  CHECK_FALSE(h.Held("ev-1", 5000));
  h.Place("ev-1", Hold{"charging", 7000, "following charging schedule 'b'"});  // replaces
  CHECK(h.size() == 1);
  CHECK(h.Find("ev-1", 6000)->reason == "following charging schedule 'b'");
  h.Expire(7000);
  CHECK(h.size() == 0);
  CHECK_FALSE(h.Held("ev-2", 0));
}
