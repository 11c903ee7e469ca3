#include "cloud_aggregator/workflow/stages.h"

#include <algorithm>
#include <cmath>

namespace derms::workflow {

Capacity TotalCapacity(const std::vector<ActiveMember>& members) {
  Capacity c;
  c.members = members.size();
  for (const auto& a : members) {
    c.baseline_kw += a.member.baseline_kw;
    c.min_kw += a.member.min_kw;
    c.max_kw += a.member.max_kw;
    if (a.der_type == derms::v1::BATTERY) c.battery_max_discharge_kw += a.member.max_kw;
  }
  c.up_kw = c.max_kw - c.baseline_kw;
  c.down_kw = c.baseline_kw - c.min_kw;
  return c;
}

double NetImbalanceKw(const derms::v1::GridStatus& grid) {
  return grid.load_kw() - grid.supply_kw();
}

double FrequencyTermKw(double frequency_hz, const FrequencyResponse& r) {
  // A grid status without a frequency reading asks for no response.
  if (frequency_hz <= 0 || r.droop_kw_per_hz == 0) return 0;
  double deviation = frequency_hz - r.nominal_hz;
  if (std::abs(deviation) <= r.deadband_hz) return 0;
  double beyond = deviation > 0 ? deviation - r.deadband_hz : deviation + r.deadband_hz;
  // Low frequency means too little generation: export more.
  return -r.droop_kw_per_hz * beyond;
}

Command DischargeCommand(double requested_kw, const Capacity& capacity) {
  Command c;
  c.requested_kw = requested_kw;
  c.command_kw = std::clamp(requested_kw, capacity.min_kw, capacity.max_kw);
  c.shortfall_kw = requested_kw - c.command_kw;
  return c;
}

}  // namespace derms::workflow
