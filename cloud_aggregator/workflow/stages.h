// The dispatch workflow's stages, each a pure function so each can be tested
// and recorded alone:
//   1. grid status (frequency, voltage, load, supply) for the substation
//   2. the active members (online, not faulted, telemetry fresh)
//   3. their capacity: up and down headroom, batteries' discharge power
//   4. net imbalance: load - supply (positive is a deficit)
//   5. the command: the DER output needed, plus a frequency droop term,
//      bounded by capacity
//   6. setpoints (tree_allocation.h), sent and tracked (dispatch_run.h)
#ifndef DERMS_CLOUD_AGGREGATOR_WORKFLOW_STAGES_H_
#define DERMS_CLOUD_AGGREGATOR_WORKFLOW_STAGES_H_

#include <string>
#include <vector>

#include "cloud_aggregator/dispatch/allocation.h"
#include "derms/v1/derms.pb.h"

namespace derms::workflow {

struct FrequencyResponse {
  double nominal_hz = 50.0;
  // kW of extra DER output per Hz below nominal (and less output per Hz
  // above); 0 turns the term off.
  double droop_kw_per_hz = 0.0;
  // No response while |frequency - nominal| is within this band.
  double deadband_hz = 0.02;
};

// A member as the workflow sees it: one active DER and its range.
struct ActiveMember {
  std::string der_id;
  int vder = -1;  // the virtual DER that claims it
  derms::v1::DerType der_type = derms::v1::DER_TYPE_UNSPECIFIED;
  dispatch::Member member;
};

// Stage 3.
struct Capacity {
  size_t members = 0;
  double baseline_kw = 0;               // output with no control
  double min_kw = 0;                    // lowest total output over the duration
  double max_kw = 0;                    // highest total output over the duration
  double up_kw = 0;                     // max_kw - baseline_kw
  double down_kw = 0;                   // baseline_kw - min_kw
  double battery_max_discharge_kw = 0;  // sum over active batteries
};
Capacity TotalCapacity(const std::vector<ActiveMember>& members);

// Stage 4: load - supply.
double NetImbalanceKw(const derms::v1::GridStatus& grid);

// Stage 5's frequency term: positive asks for more output.
double FrequencyTermKw(double frequency_hz, const FrequencyResponse& response);

struct Command {
  double requested_kw = 0;  // imbalance + frequency term: DER output wanted
  double command_kw = 0;    // requested, bounded by [capacity.min_kw, capacity.max_kw]
  double shortfall_kw = 0;  // requested - command: deficit (+) or surplus (-) left
};
// Stage 5.
Command DischargeCommand(double requested_kw, const Capacity& capacity);

}  // namespace derms::workflow

#endif  // DERMS_CLOUD_AGGREGATOR_WORKFLOW_STAGES_H_
