// Simulated devices good enough to drive a realistic fleet: a battery whose
// state of charge integrates power and stops at its limits, PV following a
// clear-sky day with cloud noise, an EV charger with plugged-in windows and
// energy needed by departure, a flexible load with a daily shape, wind with a
// turbine power curve, and a dispatchable generator. Time is whatever the
// caller passes (simulated time can run faster than wall time).
#ifndef DERMS_EDGE_AGENT_DEVICES_SIMULATED_H_
#define DERMS_EDGE_AGENT_DEVICES_SIMULATED_H_

#include <memory>

#include "edge_agent/devices/device.h"

namespace derms::edge {

// Local solar hour of day [0, 24) at `longitude` for UTC time `now_ms`.
double SolarHour(int64_t now_ms, double longitude);
// Clear-sky PV output as a fraction of capacity at a solar hour: 0 at night.
double ClearSkyFraction(double solar_hour);

// A simulated device for `nameplate.type`, starting at `start_ms`. The same
// `seed` gives the same weather, vehicles and starting state.
std::unique_ptr<Device> MakeSimulatedDevice(const Nameplate& nameplate, uint64_t seed,
                                            int64_t start_ms);

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_DEVICES_SIMULATED_H_
