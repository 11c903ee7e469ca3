// derms-sunspec-sim: the tests' SunSpec device simulator as a program, for
// trying the edge agent's SunSpec adapter by hand (README "SunSpec devices").
// Serves on 127.0.0.1 until SIGINT or SIGTERM, printing its state each second.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <exception>
#include <thread>

#include "common/signals.h"
#include "tests/support/sunspec_simulator.h"

int main(int argc, char** argv) {
  derms::testing::SunSpecSimOptions o;
  CLI::App app{
      "derms-sunspec-sim: a SunSpec PV or battery inverter over Modbus TCP on 127.0.0.1,\n"
      "models 1, 103, 120, 121, 123 (PV) or 1, 101, 120, 121, 124 (--storage), base 40000."};
  app.add_option("--port", o.port, "Modbus TCP port; 0 picks a free one")
      ->check(CLI::Range(0, 65535));
  app.add_flag("--storage", o.storage, "a battery inverter (model 124) instead of PV");
  app.add_option("--unit-id", o.unit_id, "Modbus unit id it answers to (1)")
      ->check(CLI::Range(0, 247));
  app.add_option("--rating-w", o.rating_w, "WMax, and WChaMax for storage (5000)")
      ->check(CLI::Range(100.0, 300000.0));
  app.add_option("--available-w", o.available_w, "PV: what the sun gives (4000)")
      ->check(CLI::Range(0.0, 300000.0));
  app.add_option("--soc-pct", o.soc_pct, "storage: starting state of charge (50)")
      ->check(CLI::Range(0.0, 100.0));
  int refuse_code = 0;
  app.add_option("--refuse-writes", refuse_code,
                 "answer every write with this Modbus exception code (e.g. 3); 0 accepts")
      ->check(CLI::Range(0, 11));
  CLI11_PARSE(app, argc, argv);

  auto& stop = derms::InstallStopSignals();
  try {
    derms::testing::SunSpecSimulator sim(o);
    sim.RefuseWrites(refuse_code);
    fmt::print("derms-sunspec-sim: {} on 127.0.0.1:{} unit {}\n", o.storage ? "battery" : "PV",
               sim.port(), o.unit_id);
    std::fflush(stdout);
    while (!stop) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      if (o.storage) {
        fmt::print("output {:.0f} W, SoC {:.2f} %, writes {}\n", sim.OutputW(), sim.SocPct(),
                   sim.writes());
      } else {
        fmt::print("output {:.0f} W, WMaxLimPct {} (SF -1), enabled {}, writes {}\n", sim.OutputW(),
                   sim.RawAt(123, "WMaxLimPct"), sim.RawAt(123, "WMaxLim_Ena"), sim.writes());
      }
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "derms-sunspec-sim: {}\n", e.what());
    return 1;
  }
  return 0;
}
