// An over-voltage scenario (the GridAPPS-D DEC's, by default): which feeder,
// where the PVs are, the operating point and the limits, and the daily
// load and PV shapes. Read from a TOML file; see feeder/scenarios/*.toml.
#ifndef DERMS_FEEDER_SCENARIO_H_
#define DERMS_FEEDER_SCENARIO_H_

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "feeder/curtailment.h"
#include "feeder/feeder_model.h"

namespace derms::feeder {

struct Scenario {
  std::string feeder_dir;   // OpenDSS model directory (relative to the file)
  double source_pu = 1.04;  // source voltage
  double load_mult = 0.25;  // loads at this times nominal (the snapshot)
  double pv_mult = 1.0;     // PV available at this times rated (the snapshot)
  double v_min_pu = 0.95;
  double v_max_pu = 1.05;
  // PV placement: "every_load" puts one PV per load and phase, rated at the
  // load's nominal kW (delta loads split half per phase).
  std::string pv = "every_load";
  // Areas for the per_area policy: "zone" (the part of the feeder behind the
  // nearest regulator or switch) or "bus" (each bus its own area).
  std::string area_by = "zone";
  // false: the feeder's shunt capacitors are left out (as the DEC's model
  // does: with them the feeder is over 1.05 pu with no PV at all).
  bool capacitors = true;
  std::vector<std::pair<std::string, int>> taps;  // regulator name -> step
  // The day: 96 quarter-hours. Loads at load_mult * load_shape[t] * nominal,
  // PV available at pv_shape[t] * rated.
  std::string load_shape;  // CSV, one value a line (relative to the file)
  std::string pv_shape;
  double step_h = 0.25;
};

// Reads `path`; unknown keys, wrong types and out-of-range values are errors
// naming the file and the key.
[[nodiscard]] StatusOr<Scenario> LoadScenario(const std::string& path);

// One value per line (CRLF accepted, blank lines skipped); errors name the
// file and line.
[[nodiscard]] StatusOr<std::vector<double>> ReadShape(const std::string& path);

// Adds the scenario's PVs to `model` (replacing any) and sets the areas.
// REQUIRES: scenario.pv == "every_load".
void PlacePvAtLoads(FeederModel* model, const std::string& area_by);

// The zone of each bus: the name of the bus right behind the nearest
// upstream regulator, switch or transformer ("150" for the source's zone).
std::vector<std::string> BusZones(const FeederModel& model);

// The model for a scenario: parsed feeder, taps set, PVs placed.
[[nodiscard]] StatusOr<FeederModel> LoadScenarioFeeder(const Scenario& scenario);

struct DayStep {
  int step = 0;
  double load_mult = 0, pv_mult = 0;
  double available_kw = 0, curtailed_kw = 0;
  double max_before_pu = 0, max_after_pu = 0;
  double max_ratio = 0, min_ratio = 0, jain_index = 1;
  int iterations = 0;
  bool feasible = true;
  std::string reason;
};

struct DayResult {
  FairnessPolicy policy = FairnessPolicy::kEqualRatio;
  std::vector<DayStep> steps;
  double curtailed_kwh = 0, available_kwh = 0;
  double peak_curtailed_kw = 0;
  double max_ratio = 0;          // over the day
  double min_ratio_at_peak = 0;  // at the step of most curtailment
  double jain_at_peak = 1;
  int steps_curtailed = 0, steps_infeasible = 0, max_iterations = 0;
  double max_after_pu = 0;  // highest voltage after curtailment over the day
};

// Runs the day of `scenario` under `policy`.
[[nodiscard]] StatusOr<DayResult> RunDay(const FeederModel& model, const Scenario& scenario,
                                         FairnessPolicy policy);

}  // namespace derms::feeder

#endif  // DERMS_FEEDER_SCENARIO_H_
