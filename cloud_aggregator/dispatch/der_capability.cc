#include "cloud_aggregator/dispatch/der_capability.h"

#include <algorithm>

namespace derms::dispatch {

double CostTable::CostOf(const derms::v1::DerBirth& birth) const {
  if (auto it = by_der.find(birth.der_id()); it != by_der.end()) return it->second;
  if (auto it = by_provider.find(birth.provider_id()); it != by_provider.end()) return it->second;
  auto type = by_type.find(derms::v1::DerType_Name(birth.der_type()));
  return type != by_type.end() ? type->second : default_cost;
}

Member DerMember(const derms::v1::DerBirth& birth, const derms::v1::Telemetry& t, double duration_s,
                 double cost) {
  Member m;
  m.cost = cost;
  // Edges that do not report what they can do now are held to their nameplate.
  double max_kw = birth.max_discharge_kw();
  if (t.has_available_discharge_kw()) max_kw = std::min(max_kw, t.available_discharge_kw());
  double min_kw = -birth.max_charge_kw();
  if (t.has_available_charge_kw()) min_kw = std::max(min_kw, -t.available_charge_kw());
  double capacity = birth.energy_capacity_kwh();
  if (capacity > 0 && t.has_soc_pct()) {
    double hours = duration_s / 3600.0;
    double soc = std::clamp(t.soc_pct(), 0.0, 100.0);
    m.soc_pct = soc;
    m.energy_capacity_kwh = capacity;
    max_kw = std::min(max_kw, soc / 100.0 * capacity / hours);
    min_kw = std::max(min_kw, -(100.0 - soc) / 100.0 * capacity / hours);
  }
  max_kw = std::max(max_kw, 0.0);
  min_kw = std::min(min_kw, 0.0);
  m.min_kw = min_kw;
  m.max_kw = max_kw;
  double baseline = t.has_baseline_kw() ? t.baseline_kw() : t.active_power_kw();
  m.baseline_kw = std::clamp(baseline, min_kw, max_kw);
  return m;
}

double EnergyAvailableKwh(const derms::v1::DerBirth& birth, const derms::v1::Telemetry& t) {
  if (birth.max_discharge_kw() <= 0 || birth.energy_capacity_kwh() <= 0 || !t.has_soc_pct()) {
    return 0;
  }
  return std::clamp(t.soc_pct(), 0.0, 100.0) / 100.0 * birth.energy_capacity_kwh();
}

}  // namespace derms::dispatch
