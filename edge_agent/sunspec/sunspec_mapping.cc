#include "edge_agent/sunspec/sunspec_mapping.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace derms::sunspec {
namespace {

using derms::v1::CRITICAL;
using derms::v1::INFO;
using derms::v1::Severity;
using derms::v1::WARNING;

Status Error(std::string message) { return Status::Error("sunspec_error", std::move(message)); }

struct EventBit {
  int bit;
  const char* code;
  Severity severity;
};

// Evt1 of models 101-103 and Alrm of model 701 share these bits.
constexpr EventBit kInverterEvents[] = {
    {0, "GROUND_FAULT", CRITICAL},       {1, "DC_OVER_VOLT", CRITICAL},
    {2, "AC_DISCONNECT", WARNING},       {3, "DC_DISCONNECT", WARNING},
    {4, "GRID_DISCONNECT", WARNING},     {5, "CABINET_OPEN", INFO},
    {6, "MANUAL_SHUTDOWN", INFO},        {7, "OVER_TEMP", CRITICAL},
    {8, "OVER_FREQUENCY", WARNING},      {9, "UNDER_FREQUENCY", WARNING},
    {10, "AC_OVER_VOLT", WARNING},       {11, "AC_UNDER_VOLT", WARNING},
    {12, "BLOWN_STRING_FUSE", CRITICAL}, {13, "UNDER_TEMP", WARNING},
    {14, "MEMORY_LOSS", CRITICAL},       {15, "HW_TEST_FAILURE", CRITICAL},
    {16, "MANUFACTURER_ALRM", WARNING},  // 701 only
};

// Evt1 of model 802 (battery).
constexpr EventBit kBatteryEvents[] = {
    {0, "COMMUNICATION_ERROR", WARNING},
    {1, "OVER_TEMP_ALARM", CRITICAL},
    {2, "OVER_TEMP_WARNING", WARNING},
    {3, "UNDER_TEMP_ALARM", CRITICAL},
    {4, "UNDER_TEMP_WARNING", WARNING},
    {5, "OVER_CHARGE_CURRENT_ALARM", CRITICAL},
    {6, "OVER_CHARGE_CURRENT_WARNING", WARNING},
    {7, "OVER_DISCHARGE_CURRENT_ALARM", CRITICAL},
    {8, "OVER_DISCHARGE_CURRENT_WARNING", WARNING},
    {9, "OVER_VOLT_ALARM", CRITICAL},
    {10, "OVER_VOLT_WARNING", WARNING},
    {11, "UNDER_VOLT_ALARM", CRITICAL},
    {12, "UNDER_VOLT_WARNING", WARNING},
    {13, "UNDER_SOC_MIN_ALARM", WARNING},
    {14, "UNDER_SOC_MIN_WARNING", WARNING},
    {15, "OVER_SOC_MAX_ALARM", WARNING},
    {16, "OVER_SOC_MAX_WARNING", WARNING},
    {17, "VOLTAGE_IMBALANCE_WARNING", WARNING},
    {18, "TEMPERATURE_IMBALANCE_ALARM", CRITICAL},
    {19, "TEMPERATURE_IMBALANCE_WARNING", WARNING},
    {20, "CONTACTOR_ERROR", CRITICAL},
    {21, "FAN_ERROR", WARNING},
    {22, "GROUND_FAULT", CRITICAL},
    {23, "OPEN_DOOR_ERROR", WARNING},
    {24, "CURRENT_IMBALANCE_WARNING", WARNING},
    {25, "OTHER_ALARM", WARNING},
    {26, "OTHER_WARNING", WARNING},
    {28, "CONFIGURATION_ALARM", WARNING},
    {29, "CONFIGURATION_WARNING", WARNING},
};

constexpr uint16_t kInverterModels[] = {101, 102, 103};

derms::v1::Alarm MakeAlarm(const std::string& code, Severity severity, const std::string& text) {
  derms::v1::Alarm a;
  a.set_code(code);
  a.set_severity(severity);
  a.set_message(text);
  return a;
}

template <size_t N>
void AddEvents(const ModelData& m, std::string_view point, const EventBit (&bits)[N],
               std::vector<derms::v1::Alarm>* out) {
  auto raw = m.Raw(point);
  if (!raw) return;
  for (const auto& b : bits) {
    if ((*raw >> b.bit) & 1) {
      out->push_back(MakeAlarm(
          b.code, b.severity,
          fmt::format("SunSpec model {} {} bit {} ({}) set", m.id(), point, b.bit, b.code)));
    }
  }
}

const ModelData* Get(const ModelSet& models, uint16_t id) {
  auto it = models.find(id);
  return it == models.end() ? nullptr : &it->second;
}

const ModelData* Inverter(const ModelSet& models) {
  for (uint16_t id : kInverterModels) {
    if (auto* m = Get(models, id)) return m;
  }
  return nullptr;
}

// The first known value among (model, point) pairs, in kW (from W).
double FirstKw(const ModelSet& models,
               std::initializer_list<std::pair<uint16_t, std::string_view>> points) {
  for (auto [id, point] : points) {
    const ModelData* m = Get(models, id);
    if (!m) continue;
    auto v = m->Value(point);
    if (v && *v > 0) return *v / 1000.0;
  }
  return 0;
}

std::optional<double> SocPct(const ModelSet& models) {
  if (auto* m = Get(models, 124)) {
    if (auto v = m->Value("ChaState")) return std::clamp(*v, 0.0, 100.0);
  }
  if (auto* m = Get(models, 802)) {
    if (auto v = m->Value("SoC")) return std::clamp(*v, 0.0, 100.0);
  }
  return std::nullopt;
}

Status Add(const ModelData& m, std::string_view point, double value, ControlPlan* plan) {
  auto w = EncodePoint(m, point, value);
  if (!w.ok()) return w.status();
  plan->writes.push_back(std::move(w).value());
  return Status::Ok();
}

}  // namespace

StatusOr<ModelSet> ReadModelSet(const std::vector<ModelHeader>& headers,
                                const std::vector<int64_t>& wanted, const RegisterReader& read) {
  auto is_wanted = [&wanted](uint16_t id) {
    return wanted.empty() || std::find(wanted.begin(), wanted.end(), id) != wanted.end();
  };
  ModelSet models;
  for (const auto& h : headers) {
    const ModelDef* def = FindModelDef(h.id);
    if (!def || !is_wanted(h.id) || models.count(h.id)) continue;
    auto regs = ReadModel(h, read);
    if (!regs.ok()) return regs.status();
    models.emplace(h.id, ModelData(def, h.address, std::move(regs).value()));
  }
  for (int64_t id : wanted) {
    if (!models.count(static_cast<uint16_t>(id))) {
      return Error(fmt::format("model {} is configured but the device does not have it", id));
    }
  }
  return models;
}

Ratings RatingsOf(const ModelSet& models) {
  Ratings r;
  r.storage = models.count(124) > 0 || models.count(802) > 0;
  r.max_export_kw =
      FirstKw(models, {{121, "WMax"}, {702, "WMax"}, {120, "WRtg"}, {702, "WMaxRtg"}});
  r.max_charge_kw = FirstKw(models, {{124, "WChaMax"},
                                     {702, "WChaRteMax"},
                                     {802, "WChaRteMax"},
                                     {120, "MaxChaRte"},
                                     {702, "WChaRteMaxRtg"}});
  r.max_discharge_kw = FirstKw(models, {{702, "WDisChaRteMax"},
                                        {802, "WDisChaRteMax"},
                                        {120, "MaxDisChaRte"},
                                        {702, "WDisChaRteMaxRtg"}});
  if (r.storage && r.max_discharge_kw == 0) r.max_discharge_kw = r.max_charge_kw;
  if (r.storage && r.max_export_kw > 0) {
    r.max_discharge_kw = std::min(r.max_discharge_kw, r.max_export_kw);
  }
  if (auto* m = Get(models, 124)) {
    if (auto v = m->Value("MinRsvPct")) r.min_reserve_pct = std::clamp(*v, 0.0, 100.0);
  }
  return r;
}

std::optional<ControlKind> ControlKindOf(const ModelSet& models, bool storage) {
  const ModelData* m704 = Get(models, 704);
  if (storage) {
    if (m704 && m704->AddressOf("WSet") && m704->AddressOf("WSetEna")) return ControlKind::kWSet704;
    if (models.count(124)) return ControlKind::kStorage124;
    return std::nullopt;
  }
  if (m704 && m704->AddressOf("WMaxLimPct") && m704->AddressOf("WMaxLimPctEna")) {
    return ControlKind::kWMaxLimPct704;
  }
  if (models.count(123)) return ControlKind::kWMaxLimPct123;
  return std::nullopt;
}

const char* ControlKindName(ControlKind kind) {
  switch (kind) {
    case ControlKind::kWMaxLimPct704:
      return "704.WMaxLimPct";
    case ControlKind::kWMaxLimPct123:
      return "123.WMaxLimPct";
    case ControlKind::kWSet704:
      return "704.WSet";
    case ControlKind::kStorage124:
      return "124.OutWRte/InWRte";
  }
  return "?";
}

Status CheckModels(const ModelSet& models, bool storage) {
  if (!Inverter(models) && !models.count(701)) {
    return Error("no inverter measurement model (101, 102, 103 or 701) in use");
  }
  if (storage && !models.count(124) && !models.count(802)) {
    return Error("a storage DER needs model 124 or 802 for its state of charge");
  }
  if (!ControlKindOf(models, storage)) {
    return Error(storage ? "a storage DER needs model 704 (WSet) or 124 for its controls"
                         : "a PV DER needs model 704 or 123 for its power limit");
  }
  return Status::Ok();
}

derms::edge::Reading ReadingOf(const ModelSet& models) {
  derms::edge::Reading r;
  if (const ModelData* inv = Inverter(models)) {
    r.active_power_kw = inv->Value("W").value_or(0) / 1000.0;
    r.reactive_power_kvar = inv->Value("VAr").value_or(0) / 1000.0;
    double sum = 0;
    int n = 0;
    for (const char* p : {"PhVphA", "PhVphB", "PhVphC"}) {
      if (auto v = inv->Value(p)) {
        sum += *v;
        ++n;
      }
    }
    r.voltage_v = n > 0 ? sum / n : 0;
    r.frequency_hz = inv->Value("Hz").value_or(0);
    AddEvents(*inv, "Evt1", kInverterEvents, &r.alarms);
    if (inv->Raw("St") == 7) {
      r.alarms.push_back(MakeAlarm("INVERTER_FAULT", CRITICAL,
                                   fmt::format("SunSpec model {} St is FAULT", inv->id())));
    }
  } else if (const ModelData* m = Get(models, 701)) {
    r.active_power_kw = m->Value("W").value_or(0) / 1000.0;
    r.reactive_power_kvar = m->Value("Var").value_or(0) / 1000.0;
    r.voltage_v = m->Value("LNV").value_or(0);
    r.frequency_hz = m->Value("Hz").value_or(0);
    AddEvents(*m, "Alrm", kInverterEvents, &r.alarms);
    if (m->Raw("InvSt") == 6) {
      r.alarms.push_back(MakeAlarm("INVERTER_FAULT", CRITICAL, "SunSpec model 701 InvSt is FAULT"));
    }
  }
  if (const ModelData* m = Get(models, 802)) {
    AddEvents(*m, "Evt1", kBatteryEvents, &r.alarms);
    if (m->Raw("State") == 99) {
      r.alarms.push_back(MakeAlarm("BATTERY_FAULT", CRITICAL, "SunSpec model 802 State is FAULT"));
    }
  }
  r.soc_pct = SocPct(models);
  return r;
}

derms::edge::PowerRange RangeOf(const ModelSet& models, const Ratings& ratings) {
  if (!ratings.storage) return {0.0, ratings.max_export_kw};
  derms::edge::PowerRange range{-ratings.max_charge_kw, ratings.max_discharge_kw};
  if (auto soc = SocPct(models)) {
    if (*soc >= 100.0) range.min_kw = 0;
    if (*soc <= ratings.min_reserve_pct) range.max_kw = 0;
  }
  return range;
}

StatusOr<ControlPlan> PlanControl(const ModelSet& models, const Ratings& ratings,
                                  derms::edge::PowerRange range, ControlKind kind,
                                  std::optional<double> setpoint_kw) {
  ControlPlan plan;
  if (setpoint_kw) {
    if (!std::isfinite(*setpoint_kw)) return Error("setpoint is not finite");
    plan.applied_kw =
        std::clamp(*setpoint_kw, std::min(range.min_kw, 0.0), std::max(range.max_kw, 0.0));
  }
  Status s;
  switch (kind) {
    case ControlKind::kWMaxLimPct704:
    case ControlKind::kWMaxLimPct123: {
      bool is704 = kind == ControlKind::kWMaxLimPct704;
      const ModelData* m = Get(models, is704 ? 704 : 123);
      if (!m) return Error(fmt::format("model {} is not in use", is704 ? 704 : 123));
      const char* enable = is704 ? "WMaxLimPctEna" : "WMaxLim_Ena";
      if (plan.applied_kw) {
        if (ratings.max_export_kw <= 0) {
          return Error(
              "the device reports no WMax (121, 702) or WRtg (120): a limit in % "
              "cannot be computed");
        }
        plan.applied_kw = std::max(0.0, *plan.applied_kw);
        double pct = std::clamp(100.0 * *plan.applied_kw / ratings.max_export_kw, 0.0, 100.0);
        s = Add(*m, "WMaxLimPct", pct, &plan);
        if (s.ok()) s = Add(*m, enable, 1, &plan);
      } else {
        s = Add(*m, enable, 0, &plan);
      }
      break;
    }
    case ControlKind::kWSet704: {
      const ModelData* m = Get(models, 704);
      if (!m) return Error("model 704 is not in use");
      if (plan.applied_kw) {
        s = Add(*m, "WSetMod", 1, &plan);  // WATTS
        if (s.ok()) s = Add(*m, "WSet", *plan.applied_kw * 1000.0, &plan);
        if (s.ok()) s = Add(*m, "WSetEna", 1, &plan);
      } else {
        s = Add(*m, "WSetEna", 0, &plan);
      }
      break;
    }
    case ControlKind::kStorage124: {
      const ModelData* m = Get(models, 124);
      if (!m) return Error("model 124 is not in use");
      if (plan.applied_kw) {
        double cha = ratings.max_charge_kw;
        double dis = ratings.max_discharge_kw;
        if (cha <= 0 || dis <= 0) {
          return Error("the device reports no WChaMax (124): rates in % cannot be computed");
        }
        double p = *plan.applied_kw;
        double out_pct = std::clamp(100.0 * p / dis, -100.0, 100.0);
        double in_pct = std::clamp(-100.0 * p / cha, -100.0, 100.0);
        s = Add(*m, "OutWRte", out_pct, &plan);
        if (s.ok()) s = Add(*m, "InWRte", in_pct, &plan);
        if (s.ok()) s = Add(*m, "StorCtl_Mod", 3, &plan);  // CHARGE | DISCHARGE limits in force
      } else {
        s = Add(*m, "StorCtl_Mod", 0, &plan);
      }
      break;
    }
  }
  if (!s.ok()) return s;
  return plan;
}

}  // namespace derms::sunspec
