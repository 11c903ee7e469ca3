// Demand-response resources behind the Device seam, with the behaviour that
// limits their flexibility:
//  - CiLoad: a commercial or industrial load. A base load that cannot be
//    touched plus blocks of machines that can be shed, each with a minimum
//    off time (once stopped it stays off) and a minimum on time (once
//    restarted it runs), and a rebound after a curtailment ends: part of the
//    deferred work is caught up, above the usual demand.
//  - Thermostat: a heat pump or air conditioner in a house modelled as one
//    thermal resistance and capacitance (RC). Uncontrolled it holds its set
//    temperature; what it may draw is bounded so the indoor temperature
//    stays inside the occupants' comfort band, and it reports that bound.
// Both consume: active power is negative. Time is whatever the caller passes.
#ifndef DERMS_EDGE_AGENT_DEVICES_DEMAND_RESPONSE_H_
#define DERMS_EDGE_AGENT_DEVICES_DEMAND_RESPONSE_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "common/status.h"
#include "edge_agent/devices/device.h"

namespace derms::edge {

struct CiLoadOptions {
  // Sheddable blocks (machines, chillers, pumps) and each one's share of the
  // nameplate's max_charge_kw; the rest is base load that is never shed.
  int blocks = 4;
  double block_share = 0.15;
  // Once shed, a block stays off at least this long; once back on, it runs
  // at least this long before it may be shed again.
  int64_t min_off_s = 300;
  int64_t min_on_s = 900;
  // Share of the energy shed that is caught up after the curtailment, and
  // the most the catch-up adds, as a share of the blocks' power.
  double rebound_share = 0.6;
  double rebound_peak_share = 0.5;

  Status Validate() const;
};

struct ThermostatOptions {
  // Indoor temperature the occupants set, and how far either side of it they
  // accept while the DER is dispatched (the comfort band).
  double setpoint_c = 22.0;
  double comfort_band_c = 1.5;
  // The house: thermal resistance to outdoors (degrees C per kW of heat
  // flow) and capacitance (kWh per degree C); R x C is its time constant.
  double resistance_c_per_kw = 2.5;
  double capacitance_kwh_per_c = 3.0;
  // Heat moved per kW of electricity.
  double cop = 3.0;
  // Outdoor temperature: daily mean and swing (peak at 15:00 solar time).
  // Warmer than the setpoint: it cools (an air conditioner); colder: it heats.
  double outdoor_mean_c = 30.0;
  double outdoor_swing_c = 5.0;
  // Indoor temperature at start; NaN: the setpoint.
  double initial_indoor_c = std::numeric_limits<double>::quiet_NaN();
  // How far ahead the band is guaranteed: the reported range holds the
  // temperature inside it for this long whatever setpoint in it is chosen.
  double horizon_s = 300;

  Status Validate() const;
};

// The C&I load's state, for tests and the README.
struct CiLoadState {
  int blocks_on = 0;
  double base_kw = 0;       // >= 0, drawn
  double rebound_kw = 0;    // >= 0, drawn above demand while catching up
  double deferred_kwh = 0;  // work still to catch up
};

// REQUIRES: options.Validate().ok(), nameplate.max_charge_kw > 0.
std::unique_ptr<Device> MakeCiLoad(const Nameplate& nameplate, const CiLoadOptions& options,
                                   int64_t start_ms);
std::unique_ptr<Device> MakeThermostat(const Nameplate& nameplate, const ThermostatOptions& options,
                                       int64_t start_ms);

// Reads the model's state out of a device made by the functions above
// (nullopt for any other device).
std::optional<CiLoadState> CiLoadStateOf(const Device& device);
std::optional<double> IndoorTemperatureOf(const Device& device);

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_DEVICES_DEMAND_RESPONSE_H_
