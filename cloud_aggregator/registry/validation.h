// Checks every message the aggregator accepts against the contract's rules
// (Validate*: the message alone), and telemetry against what its DER
// declared at birth (CheckTelemetryPlausible). Each error names the input
// (message kind and DER or substation), the field and the rule; its code
// ("invalid_field", "id_mismatch", "implausible") is the key under which
// rejections are counted.
#ifndef DERMS_CLOUD_AGGREGATOR_REGISTRY_VALIDATION_H_
#define DERMS_CLOUD_AGGREGATOR_REGISTRY_VALIDATION_H_

#include <cstdint>
#include <string_view>

#include "common/status.h"
#include "derms/v1/derms.pb.h"

namespace derms::registry {

// `topic_id` is the identifier taken from the topic; the payload must agree.
Status ValidateBirth(const derms::v1::DerBirth& m, std::string_view topic_id);
Status ValidateStatus(const derms::v1::DerStatus& m, std::string_view topic_id);
// `now_ms`: timestamps more than a day ahead of it are rejected.
Status ValidateTelemetry(const derms::v1::Telemetry& m, std::string_view topic_id, int64_t now_ms);

// How far telemetry may stray from what its DER declared at birth, and from
// the aggregator's clock, before it is implausible.
struct PlausibilityOptions {
  // Power may exceed the nameplate by this fraction (meter error, short
  // inverter overload)...
  double nameplate_tolerance = 0.10;
  // ...plus this many kW (noise around zero: a PV's inverter draws a little
  // at night although it declares no charge rating).
  double nameplate_slack_kw = 0.5;
  // timestamp_ms may be this far ahead of the aggregator's clock (clocks on
  // NTP agree to well under a second; a sample from the future is a clock
  // never set or a forged message).
  int64_t max_ahead_ms = 5 * 60 * 1000;
  // voltage_v, when measured (non-zero): up to the highest distribution
  // voltage class, 34.5 kV, plus 10 %.
  double max_voltage_v = 38000;
  // frequency_hz, when measured (non-zero): 50 Hz - 10 % to 60 Hz + 10 %;
  // beyond that every grid-connected DER has tripped off.
  double min_frequency_hz = 45;
  double max_frequency_hz = 66;
};

// Checks telemetry that passed ValidateTelemetry against the nameplate of
// `birth`, the DER's newest birth, and against `now_ms`. Each value must be
// one the DER can produce (limit = rating x (1 + tolerance) + slack):
//   active_power_kw, setpoint_kw, baseline_kw in [-charge limit, discharge limit];
//   available_discharge_kw <= discharge limit, available_charge_kw <= charge limit;
//   |reactive_power_kvar| <= the limit of the larger rating (the inverter's
//     apparent power bounds each of P and Q, and inverters are sized to the
//     kW rating, at most ~10 % over it);
//   voltage_v and frequency_hz 0 (not measured) or within the options' range;
//   timestamp_ms at most `max_ahead_ms` ahead of now_ms.
// An error has code "implausible" and names the DER, the field, the value
// and the rule: "telemetry from der 'wind-3': active_power_kw 900000
// outside [-0.5, 55.5] (nameplate: discharge 50 kW, charge 0 kW; + 10 % +
// 0.5 kW)". Pure; any thread.
Status CheckTelemetryPlausible(const derms::v1::Telemetry& m, const derms::v1::DerBirth& birth,
                               int64_t now_ms, const PlausibilityOptions& options = {});
Status ValidateResponse(const derms::v1::ControlResponse& m, std::string_view topic_id);
Status ValidateGridStatus(const derms::v1::GridStatus& m, std::string_view topic_id);
// REQUIRES: now_ms on the aggregator's clock (start_ms is checked against it).
Status ValidateDispatchRequest(const derms::v1::DispatchRequest& m, std::string_view topic_id,
                               int64_t now_ms);

}  // namespace derms::registry

#endif  // DERMS_CLOUD_AGGREGATOR_REGISTRY_VALIDATION_H_
