// What one DER can do over a dispatch duration, from its nameplate (birth)
// and its newest telemetry. Pure logic.
//
// The range is the tightest of: the nameplate, what the device says it can do
// right now (available_discharge_kw / available_charge_kw, when sent), and, for storage
// (energy_capacity_kwh > 0 with soc_pct reported), the energy it holds or can
// still take spread over the duration: a battery at 5 % cannot discharge at
// full power for an hour. The baseline is the reported baseline_kw, or the
// current output when the edge does not send one.
#ifndef DERMS_CLOUD_AGGREGATOR_DISPATCH_DER_CAPABILITY_H_
#define DERMS_CLOUD_AGGREGATOR_DISPATCH_DER_CAPABILITY_H_

#include <map>
#include <string>

#include "cloud_aggregator/dispatch/allocation.h"
#include "derms/v1/derms.pb.h"

namespace derms::dispatch {

// Merit-order costs (per kWh of deviation from baseline). The most specific
// entry wins: the DER's own, then its provider's, then its type's, then the
// default.
struct CostTable {
  double default_cost = 0;
  std::map<std::string, double> by_der;
  std::map<std::string, double> by_provider;
  std::map<std::string, double> by_type;  // "BATTERY", "PV", ...

  double CostOf(const derms::v1::DerBirth& birth) const;
};

// REQUIRES: duration_s > 0; birth and telemetry passed validation.
Member DerMember(const derms::v1::DerBirth& birth, const derms::v1::Telemetry& telemetry,
                 double duration_s, double cost);

// Energy a DER could deliver from storage now (kWh): 0 for DERs that cannot
// discharge or report no state of charge.
double EnergyAvailableKwh(const derms::v1::DerBirth& birth, const derms::v1::Telemetry& telemetry);

}  // namespace derms::dispatch

#endif  // DERMS_CLOUD_AGGREGATOR_DISPATCH_DER_CAPABILITY_H_
