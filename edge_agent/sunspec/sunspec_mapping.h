// From SunSpec models to the contract and back, as pure functions over the
// models' registers: ratings, a telemetry reading (active and reactive power,
// voltage, frequency, state of charge, alarms from the event bitfields), the
// feasible range, and the register writes that put a setpoint in force.
//
// Controls, by what the device offers (first match wins):
// - PV (no storage model): model 704 WMaxLimPct + WMaxLimPctEna, else model
//   123 WMaxLimPct + WMaxLim_Ena, as a percentage of WMax. No setpoint writes
//   the enable point 0 (DISABLED).
// - Storage: model 704 WSet (watts, WSetMod = WATTS) + WSetEna when present,
//   else model 124. With 124, a setpoint p (+ discharge) is held by a window on
//   both rates, the convention of deployed inverters: OutWRte (discharge limit,
//   % of the discharge rating) = p and InWRte (charge limit, % of WChaMax) =
//   -p, with StorCtl_Mod = CHARGE|DISCHARGE (3) so both limits are in force;
//   a negative InWRte forces discharge, a negative OutWRte forces charge. No
//   setpoint writes StorCtl_Mod 0 (the device's own behaviour).
// Every setpoint is clamped to the range the device reports before encoding.
#ifndef DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_MAPPING_H_
#define DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_MAPPING_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "edge_agent/devices/device.h"
#include "edge_agent/sunspec/sunspec_model.h"

namespace derms::sunspec {

// The device's models in use, keyed by model id (the first of each id).
using ModelSet = std::map<uint16_t, ModelData>;

// Reads the discovered models this adapter knows that `wanted` lists (empty:
// all it knows), the first of each id. Error "sunspec_error" when a wanted
// model was not discovered, or a read fails.
StatusOr<ModelSet> ReadModelSet(const std::vector<ModelHeader>& headers,
                                const std::vector<int64_t>& wanted, const RegisterReader& read);

// Ratings read from nameplate and settings models, in kW. Zero: unknown.
struct Ratings {
  double max_export_kw = 0;     // 121 WMax, 702 WMax, 120 WRtg, 702 WMaxRtg
  double max_charge_kw = 0;     // 124 WChaMax, 702 WChaRteMax, 802 WChaRteMax, 120 MaxChaRte
  double max_discharge_kw = 0;  // 702 WDisChaRteMax, 802 WDisChaRteMax, 120 MaxDisChaRte
  double min_reserve_pct = 0;   // 124 MinRsvPct
  bool storage = false;         // 124 or 802 present
};
Ratings RatingsOf(const ModelSet& models);

// Which control the device's models allow, or nullopt when none does.
enum class ControlKind { kWMaxLimPct704, kWMaxLimPct123, kWSet704, kStorage124 };
std::optional<ControlKind> ControlKindOf(const ModelSet& models, bool storage);
const char* ControlKindName(ControlKind kind);

// Which models the adapter needs, checked after discovery: an inverter
// measurement (101, 102, 103 or 701), and for storage a state of charge (124
// or 802), and a control. Error "sunspec_error" naming what is missing.
Status CheckModels(const ModelSet& models, bool storage);

// The reading in the contract's units: W -> kW, var -> kvar, V, Hz, SoC %.
// Alarms: each set bit of 101-103 Evt1, 701 Alrm and 802 Evt1 becomes an alarm
// whose code is the SunSpec symbol; hardware faults (ground fault, DC over
// voltage, over temperature, blown fuse, memory loss, hardware test failure,
// contactor, battery over-temperature/voltage/current alarms) and an inverter
// or battery state FAULT are CRITICAL; grid events are WARNING; cabinet open
// and manual shutdown are INFO. run_time_s is left for the caller.
derms::edge::Reading ReadingOf(const ModelSet& models);

// What the device can do now: PV [0, max export]; storage [-charge, +discharge]
// with charging closed at 100 % SoC and discharging at or below the reserve.
derms::edge::PowerRange RangeOf(const ModelSet& models, const Ratings& ratings);

// The writes that put `setpoint_kw` in force (nullopt: release control), in
// the order to write them: values first, the enable point last.
// `applied_kw` receives the setpoint after the clamp to `range`. Errors
// ("sunspec_error") name the point that cannot carry the value.
struct ControlPlan {
  std::vector<RegisterWrite> writes;
  std::optional<double> applied_kw;
};
StatusOr<ControlPlan> PlanControl(const ModelSet& models, const Ratings& ratings,
                                  derms::edge::PowerRange range, ControlKind kind,
                                  std::optional<double> setpoint_kw);

}  // namespace derms::sunspec

#endif  // DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_MAPPING_H_
