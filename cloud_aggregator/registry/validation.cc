#include "cloud_aggregator/registry/validation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/feeder_node.h"
#include "common/topics.h"

namespace derms::registry {
namespace {

constexpr int64_t kDayMs = 24LL * 3600 * 1000;
// 2000-01-01T00:00Z. Anything earlier is a clock never set, or another
// message type's field read as a timestamp.
constexpr int64_t kEarliestMs = 946684800000LL;
// Nothing connected to a distribution feeder is bigger than this.
constexpr double kMaxPlausibleKw = 1.0e6;

// Builds errors that all start with the same "<what> '<id>': " prefix.
class Checker {
 public:
  Checker(std::string_view what, std::string_view id) : what_(what), id_(id) {}

  Status Fail(std::string_view code, const std::string& rule) const {
    return Status::Error(std::string(code), fmt::format("{} '{}': {}", what_, id_, rule));
  }
  Status OptionalFeederNode(std::string_view value) const {
    if (value.empty()) return Status::Ok();
    auto node = ParseFeederNode("feeder_node", value);
    return node.ok() ? Status::Ok() : Fail("invalid_field", node.status().message());
  }
  Status IdMatches(std::string_view field, std::string_view value) const {
    if (value == id_) return Status::Ok();
    return Fail("id_mismatch",
                fmt::format("{} '{}' does not match the topic's '{}'", field, value, id_));
  }
  Status Finite(std::string_view field, double v) const {
    if (std::isfinite(v)) return Status::Ok();
    return Fail("invalid_field", fmt::format("{} {} is not a finite number", field, v));
  }
  Status InRange(std::string_view field, double v, double lo, double hi) const {
    if (std::isfinite(v) && v >= lo && v <= hi) return Status::Ok();
    return Fail("invalid_field", fmt::format("{} {} outside [{}, {}]", field, v, lo, hi));
  }
  Status OptionalId(std::string_view field, const std::string& v) const {
    if (v.empty() || topics::IsValidId(v)) return Status::Ok();
    return Fail("invalid_field", fmt::format("{} '{}' does not match [A-Za-z0-9_-]{{1,64}}", field,
                                             v.substr(0, 80)));
  }
  Status Timestamp(int64_t ts, int64_t now_ms) const {
    if (ts < kEarliestMs) {
      return Fail("invalid_field",
                  fmt::format("timestamp_ms {} is before 2000-01-01 ({})", ts, kEarliestMs));
    }
    if (now_ms > 0 && ts > now_ms + kDayMs) {
      return Fail("invalid_field",
                  fmt::format("timestamp_ms {} is more than a day ahead of now ({})", ts, now_ms));
    }
    return Status::Ok();
  }

 private:
  std::string_view what_;
  std::string_view id_;
};

// Returns the first failed check, or Ok.
Status First(std::initializer_list<Status> checks) {
  for (const auto& s : checks) {
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Status ValidateBirth(const derms::v1::DerBirth& m, std::string_view topic_id) {
  Checker c("birth from der", topic_id);
  Status s = First({
      c.IdMatches("der_id", m.der_id()),
      m.bd_seq() > 0 ? Status::Ok() : c.Fail("invalid_field", "bd_seq must be > 0"),
      derms::v1::DerType_IsValid(m.der_type()) && m.der_type() != derms::v1::DER_TYPE_UNSPECIFIED
          ? Status::Ok()
          : c.Fail("invalid_field", fmt::format("der_type {} is not a known DER type",
                                                static_cast<int>(m.der_type()))),
      c.InRange("max_discharge_kw", m.max_discharge_kw(), 0, kMaxPlausibleKw),
      c.InRange("max_charge_kw", m.max_charge_kw(), 0, kMaxPlausibleKw),
      c.InRange("energy_capacity_kwh", m.energy_capacity_kwh(), 0, 1.0e7),
      topics::IsValidId(m.substation_id())
          ? Status::Ok()
          : c.Fail("invalid_field", fmt::format("substation_id '{}' does not match "
                                                "[A-Za-z0-9_-]{{1,64}}",
                                                m.substation_id().substr(0, 80))),
      c.OptionalId("feeder_id", m.feeder_id()),
      c.OptionalFeederNode(m.feeder_node()),
      c.OptionalId("provider_id", m.provider_id()),
      c.InRange("latitude", m.latitude(), -90, 90),
      c.InRange("longitude", m.longitude(), -180, 180),
      c.Timestamp(m.timestamp_ms(), 0),
  });
  if (!s.ok()) return s;
  for (const auto& tag : m.tags()) {
    if (tag.empty() || tag.size() > 64) {
      return c.Fail("invalid_field", "tags: each must be 1 to 64 characters");
    }
  }
  return Status::Ok();
}

Status ValidateStatus(const derms::v1::DerStatus& m, std::string_view topic_id) {
  Checker c("status from der", topic_id);
  return First({c.IdMatches("der_id", m.der_id()),
                m.bd_seq() > 0 ? Status::Ok() : c.Fail("invalid_field", "bd_seq must be > 0")});
}

Status ValidateTelemetry(const derms::v1::Telemetry& m, std::string_view topic_id, int64_t now_ms) {
  Checker c("telemetry from der", topic_id);
  Status s = First({
      c.IdMatches("der_id", m.der_id()),
      m.seq() > 0 ? Status::Ok() : c.Fail("invalid_field", "seq must be > 0"),
      c.Timestamp(m.timestamp_ms(), now_ms),
      c.InRange("active_power_kw", m.active_power_kw(), -kMaxPlausibleKw, kMaxPlausibleKw),
      c.InRange("reactive_power_kvar", m.reactive_power_kvar(), -kMaxPlausibleKw, kMaxPlausibleKw),
      m.has_soc_pct() ? c.InRange("soc_pct", m.soc_pct(), 0, 100) : Status::Ok(),
      c.InRange("voltage_v", m.voltage_v(), 0, 1.0e6),
      c.InRange("frequency_hz", m.frequency_hz(), 0, 1000),
      m.has_setpoint_kw() ? c.Finite("setpoint_kw", m.setpoint_kw()) : Status::Ok(),
      c.InRange("run_time_s", m.run_time_s(), 0, 1.0e12),
      c.InRange("available_discharge_kw", m.available_discharge_kw(), 0, kMaxPlausibleKw),
      c.InRange("available_charge_kw", m.available_charge_kw(), 0, kMaxPlausibleKw),
      c.Finite("baseline_kw", m.baseline_kw()),
  });
  if (!s.ok()) return s;
  for (const auto& a : m.alarms()) {
    if (!derms::v1::Severity_IsValid(a.severity())) {
      return c.Fail("invalid_field", fmt::format("alarms: severity {} of '{}' is not known",
                                                 static_cast<int>(a.severity()), a.code()));
    }
  }
  return Status::Ok();
}

Status CheckTelemetryPlausible(const derms::v1::Telemetry& m, const derms::v1::DerBirth& birth,
                               int64_t now_ms, const PlausibilityOptions& o) {
  Checker c("telemetry from der", m.der_id());
  // Rounded to the watt, so that a message reads 55.5 rather than 55.50000000000001.
  auto limit = [&](double rated_kw) {
    return std::round((rated_kw * (1 + o.nameplate_tolerance) + o.nameplate_slack_kw) * 1000) /
           1000;
  };
  const double discharge = limit(birth.max_discharge_kw());
  const double charge = limit(birth.max_charge_kw());
  const double apparent = limit(std::max(birth.max_discharge_kw(), birth.max_charge_kw()));
  // Described only when a value fails: this runs for every sample.
  auto nameplate = [&] {
    return fmt::format("(nameplate: discharge {} kW, charge {} kW; + {} % + {} kW)",
                       birth.max_discharge_kw(), birth.max_charge_kw(),
                       std::round(o.nameplate_tolerance * 1000) / 10, o.nameplate_slack_kw);
  };
  auto within = [&](std::string_view field, double v, double lo, double hi,
                    std::string_view why = "") {
    if (v >= lo && v <= hi) return Status::Ok();
    return c.Fail("implausible",
                  fmt::format("{} {} outside [{}, {}] {}{}", field, v, lo, hi, why, nameplate()));
  };
  auto measured = [&](std::string_view field, double v, double lo, double hi,
                      std::string_view unit) {
    if (v == 0 || (v >= lo && v <= hi)) return Status::Ok();
    return c.Fail("implausible", fmt::format("{} {} outside [{}, {}] {} (0 when not measured)",
                                             field, v, lo, hi, unit));
  };
  return First({
      within("active_power_kw", m.active_power_kw(), -charge, discharge),
      m.has_setpoint_kw() ? within("setpoint_kw", m.setpoint_kw(), -charge, discharge)
                          : Status::Ok(),
      m.has_baseline_kw() ? within("baseline_kw", m.baseline_kw(), -charge, discharge)
                          : Status::Ok(),
      m.has_available_discharge_kw()
          ? within("available_discharge_kw", m.available_discharge_kw(), 0, discharge)
          : Status::Ok(),
      m.has_available_charge_kw()
          ? within("available_charge_kw", m.available_charge_kw(), 0, charge)
          : Status::Ok(),
      within("reactive_power_kvar", m.reactive_power_kvar(), -apparent, apparent,
             "(the larger kW rating bounds the inverter's apparent power) "),
      measured("voltage_v", m.voltage_v(), 0, o.max_voltage_v, "V"),
      measured("frequency_hz", m.frequency_hz(), o.min_frequency_hz, o.max_frequency_hz, "Hz"),
      m.timestamp_ms() <= now_ms + o.max_ahead_ms
          ? Status::Ok()
          : c.Fail("implausible",
                   fmt::format("timestamp_ms {} is {} s ahead of the aggregator's clock ({}); at "
                               "most {} s allowed",
                               m.timestamp_ms(), (m.timestamp_ms() - now_ms) / 1000, now_ms,
                               o.max_ahead_ms / 1000)),
  });
}

Status ValidateResponse(const derms::v1::ControlResponse& m, std::string_view topic_id) {
  Checker c("response from der", topic_id);
  bool needs_reason = m.status() == derms::v1::REJECTED || m.status() == derms::v1::CLAMPED;
  return First({
      m.der_id().empty() ? Status::Ok() : c.IdMatches("der_id", m.der_id()),
      m.command_id().empty() ? c.Fail("invalid_field", "command_id is required") : Status::Ok(),
      derms::v1::ControlStatus_IsValid(m.status()) &&
              m.status() != derms::v1::CONTROL_STATUS_UNSPECIFIED
          ? Status::Ok()
          : c.Fail("invalid_field", fmt::format("status {} is not a known control status",
                                                static_cast<int>(m.status()))),
      c.Finite("applied_kw", m.applied_kw()),
      needs_reason && m.reason().empty()
          ? c.Fail("invalid_field", "reason is required for REJECTED and CLAMPED")
          : Status::Ok(),
  });
}

Status ValidateGridStatus(const derms::v1::GridStatus& m, std::string_view topic_id) {
  Checker c("grid status for substation", topic_id);
  return First({
      m.substation_id().empty() ? Status::Ok() : c.IdMatches("substation_id", m.substation_id()),
      c.InRange("load_kw", m.load_kw(), -1.0e7, 1.0e7),
      c.InRange("supply_kw", m.supply_kw(), -1.0e7, 1.0e7),
      c.InRange("frequency_hz", m.frequency_hz(), 0, 1000),
      c.InRange("voltage_pu", m.voltage_pu(), 0, 10),
  });
}

Status ValidateDispatchRequest(const derms::v1::DispatchRequest& m, std::string_view topic_id,
                               int64_t now_ms) {
  Checker c("dispatch request for vder", topic_id);
  // A start must be now (0) or ahead, within a week; an interval already
  // over would only be rejected by every DER.
  constexpr int64_t kWeekMs = 7LL * 86400 * 1000;
  bool start_ok =
      m.start_ms() == 0 || (m.start_ms() >= now_ms - 60000 && m.start_ms() <= now_ms + kWeekMs);
  return First({
      m.request_id().empty() || m.request_id().size() > 128
          ? c.Fail("invalid_field", "request_id must be 1 to 128 characters")
          : Status::Ok(),
      c.InRange("target_kw", m.target_kw(), -1.0e7, 1.0e7),
      start_ok ? Status::Ok()
               : c.Fail("invalid_field",
                        fmt::format("start_ms {} must be 0 (now) or within the next 7 days",
                                    m.start_ms())),
      m.duration_s() > 0 && m.duration_s() <= 86400
          ? Status::Ok()
          : c.Fail("invalid_field",
                   fmt::format("duration_s {} outside [1, 86400]", m.duration_s())),
  });
}

}  // namespace derms::registry
