#include "edge_agent/sunspec/sunspec_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace derms::sunspec {
namespace {

using T = PointType;

Status Error(std::string message) { return Status::Error("sunspec_error", std::move(message)); }

constexpr size_t kMaxModels = 64;
constexpr uint32_t kRegisterSpace = 0x10000;
constexpr int kMaxScaleFactor = 10;

// The points of models 101/102/103 (single, split and three phase inverter):
// the same layout for all three.
std::vector<PointDef> InverterPoints() {
  return {{"PhVphA", 10, T::kUint16, "V_SF"}, {"PhVphB", 11, T::kUint16, "V_SF"},
          {"PhVphC", 12, T::kUint16, "V_SF"}, {"V_SF", 13, T::kSunssf, ""},
          {"W", 14, T::kInt16, "W_SF"},       {"W_SF", 15, T::kSunssf, ""},
          {"Hz", 16, T::kUint16, "Hz_SF"},    {"Hz_SF", 17, T::kSunssf, ""},
          {"VAr", 20, T::kInt16, "VAr_SF"},   {"VAr_SF", 21, T::kSunssf, ""},
          {"WH", 24, T::kAcc32, "WH_SF"},     {"WH_SF", 26, T::kSunssf, ""},
          {"St", 38, T::kEnum16, ""},         {"Evt1", 40, T::kBitfield32, ""}};
}

// Offsets from the SunSpec model definitions (sunspec/models json/model_N.json).
std::map<uint16_t, ModelDef> BuildDefs() {
  std::vector<ModelDef> defs = {
      {1, "common", 66, {{"DA", 66, T::kUint16, ""}}},
      {101, "inverter_single_phase", 50, InverterPoints()},
      {102, "inverter_split_phase", 50, InverterPoints()},
      {103, "inverter_three_phase", 50, InverterPoints()},
      {120,
       "nameplate",
       26,
       {{"DERTyp", 2, T::kEnum16, ""},
        {"WRtg", 3, T::kUint16, "WRtg_SF"},
        {"WRtg_SF", 4, T::kSunssf, ""},
        {"WHRtg", 19, T::kUint16, "WHRtg_SF"},
        {"WHRtg_SF", 20, T::kSunssf, ""},
        {"MaxChaRte", 23, T::kUint16, "MaxChaRte_SF"},
        {"MaxChaRte_SF", 24, T::kSunssf, ""},
        {"MaxDisChaRte", 25, T::kUint16, "MaxDisChaRte_SF"},
        {"MaxDisChaRte_SF", 26, T::kSunssf, ""}}},
      {121, "settings", 30, {{"WMax", 2, T::kUint16, "WMax_SF"}, {"WMax_SF", 22, T::kSunssf, ""}}},
      {123,
       "controls",
       24,
       {{"Conn", 4, T::kEnum16, ""},
        {"WMaxLimPct", 5, T::kUint16, "WMaxLimPct_SF"},
        {"WMaxLimPct_RvrtTms", 7, T::kUint16, ""},
        {"WMaxLim_Ena", 9, T::kEnum16, ""},
        {"WMaxLimPct_SF", 23, T::kSunssf, ""}}},
      {124,
       "storage_basic",
       24,
       {{"WChaMax", 2, T::kUint16, "WChaMax_SF"},
        {"StorCtl_Mod", 5, T::kBitfield16, ""},
        {"MinRsvPct", 7, T::kUint16, "MinRsvPct_SF"},
        {"ChaState", 8, T::kUint16, "ChaState_SF"},
        {"ChaSt", 11, T::kEnum16, ""},
        {"OutWRte", 12, T::kInt16, "InOutWRte_SF"},
        {"InWRte", 13, T::kInt16, "InOutWRte_SF"},
        {"InOutWRte_RvrtTms", 15, T::kUint16, ""},
        {"WChaMax_SF", 18, T::kSunssf, ""},
        {"MinRsvPct_SF", 21, T::kSunssf, ""},
        {"ChaState_SF", 22, T::kSunssf, ""},
        {"InOutWRte_SF", 25, T::kSunssf, ""}}},
      {701,
       "DERMeasureAC",
       153,
       {{"InvSt", 4, T::kEnum16, ""},
        {"Alrm", 6, T::kBitfield32, ""},
        {"W", 10, T::kInt16, "W_SF"},
        {"Var", 12, T::kInt16, "Var_SF"},
        {"LNV", 16, T::kUint16, "V_SF"},
        {"Hz", 17, T::kUint32, "Hz_SF"},
        {"V_SF", 114, T::kSunssf, ""},
        {"Hz_SF", 115, T::kSunssf, ""},
        {"W_SF", 116, T::kSunssf, ""},
        {"Var_SF", 119, T::kSunssf, ""}}},
      {702,
       "DERCapacity",
       50,
       {{"WMaxRtg", 2, T::kUint16, "W_SF"},
        {"WChaRteMaxRtg", 10, T::kUint16, "W_SF"},
        {"WDisChaRteMaxRtg", 11, T::kUint16, "W_SF"},
        {"WMax", 26, T::kUint16, "W_SF"},
        {"WChaRteMax", 34, T::kUint16, "W_SF"},
        {"WDisChaRteMax", 35, T::kUint16, "W_SF"},
        {"W_SF", 45, T::kSunssf, ""}}},
      {704,
       "DERCtlAC",
       65,
       {{"WMaxLimPctEna", 14, T::kEnum16, ""},
        {"WMaxLimPct", 15, T::kUint16, "WMaxLimPct_SF"},
        {"WSetEna", 22, T::kEnum16, ""},
        {"WSetMod", 23, T::kEnum16, ""},
        {"WSet", 24, T::kInt32, "WSet_SF"},
        {"WMaxLimPct_SF", 54, T::kSunssf, ""},
        {"WSet_SF", 55, T::kSunssf, ""}}},
      {802,
       "battery",
       62,
       {{"WHRtg", 3, T::kUint16, "WHRtg_SF"},
        {"WChaRteMax", 4, T::kUint16, "WChaDisChaMax_SF"},
        {"WDisChaRteMax", 5, T::kUint16, "WChaDisChaMax_SF"},
        {"SoC", 11, T::kUint16, "SoC_SF"},
        {"State", 22, T::kEnum16, ""},
        {"Evt1", 26, T::kBitfield32, ""},
        {"WHRtg_SF", 53, T::kSunssf, ""},
        {"WChaDisChaMax_SF", 54, T::kSunssf, ""},
        {"SoC_SF", 56, T::kSunssf, ""}}},
  };
  std::map<uint16_t, ModelDef> out;
  for (auto& d : defs) out.emplace(d.id, std::move(d));
  return out;
}

const std::map<uint16_t, ModelDef>& Defs() {
  static const auto* defs = new std::map<uint16_t, ModelDef>(BuildDefs());
  return *defs;
}

int Size(PointType t) {
  switch (t) {
    case T::kInt32:
    case T::kUint32:
    case T::kAcc32:
    case T::kBitfield32:
      return 2;
    default:
      return 1;
  }
}

}  // namespace

const ModelDef* FindModelDef(uint16_t id) {
  auto it = Defs().find(id);
  return it == Defs().end() ? nullptr : &it->second;
}

std::vector<uint16_t> SupportedModelIds() {
  std::vector<uint16_t> ids;
  for (const auto& [id, def] : Defs()) ids.push_back(id);
  return ids;
}

StatusOr<std::vector<ModelHeader>> DiscoverModels(uint32_t base_address,
                                                  const RegisterReader& read) {
  std::vector<uint16_t> regs;
  Status s = read(base_address, 2, &regs);
  if (!s.ok()) return s;
  if (regs.size() != 2 || regs[0] != kMarkerHigh || regs[1] != kMarkerLow) {
    return Error(fmt::format("no SunSpec marker 'SunS' at register {} (read {:#06x} {:#06x})",
                             base_address, regs.size() > 0 ? regs[0] : 0,
                             regs.size() > 1 ? regs[1] : 0));
  }
  std::vector<ModelHeader> models;
  uint32_t address = base_address + 2;
  while (true) {
    if (address + 1 >= kRegisterSpace) {
      return Error(fmt::format("model chain from {} runs past register 65535", base_address));
    }
    s = read(address, 2, &regs);
    if (!s.ok()) return s;
    if (regs.size() != 2) return Error(fmt::format("short read at register {}", address));
    if (regs[0] == kEndOfChain) break;
    if (models.size() >= kMaxModels) {
      return Error(
          fmt::format("model chain from {} holds more than {} models", base_address, kMaxModels));
    }
    ModelHeader h{regs[0], regs[1], address};
    if (address + 2u + h.length > kRegisterSpace) {
      return Error(fmt::format("model {} at register {} with length {} runs past register 65535",
                               h.id, address, h.length));
    }
    models.push_back(h);
    address += 2u + h.length;
  }
  return models;
}

StatusOr<std::vector<uint16_t>> ReadModel(const ModelHeader& header, const RegisterReader& read) {
  std::vector<uint16_t> all;
  uint32_t total = 2u + header.length;
  all.reserve(total);
  std::vector<uint16_t> part;
  for (uint32_t done = 0; done < total;) {
    auto count = static_cast<uint16_t>(std::min<uint32_t>(kMaxReadRegisters, total - done));
    Status s = read(header.address + done, count, &part);
    if (!s.ok()) return s;
    if (part.size() != count) {
      return Error(
          fmt::format("model {}: short read at register {}", header.id, header.address + done));
    }
    all.insert(all.end(), part.begin(), part.end());
    done += count;
  }
  if (all[0] != header.id || all[1] != header.length) {
    return Error(fmt::format(
        "model {} at register {} now reads as id {} length {}: the device's map changed", header.id,
        header.address, all[0], all[1]));
  }
  return all;
}

const PointDef* ModelData::Find(std::string_view point) const {
  for (const auto& p : def_->points) {
    if (p.name == point) return &p;
  }
  return nullptr;
}

std::optional<uint32_t> ModelData::AddressOf(std::string_view point) const {
  const PointDef* p = Find(point);
  if (!p || static_cast<size_t>(p->offset + Size(p->type)) > registers_.size()) return std::nullopt;
  return address_ + p->offset;
}

std::optional<int64_t> ModelData::Raw(std::string_view point) const {
  const PointDef* p = Find(point);
  if (!p || static_cast<size_t>(p->offset + Size(p->type)) > registers_.size()) return std::nullopt;
  uint16_t r0 = registers_[p->offset];
  uint32_t r32 = Size(p->type) == 2 ? (uint32_t{r0} << 16) | registers_[p->offset + 1] : 0;
  switch (p->type) {
    case T::kInt16:
    case T::kSunssf:
      if (r0 == 0x8000) return std::nullopt;
      return static_cast<int16_t>(r0);
    case T::kUint16:
    case T::kEnum16:
    case T::kBitfield16:
      if (r0 == 0xFFFF) return std::nullopt;
      return r0;
    case T::kAcc16:
      if (r0 == 0) return std::nullopt;
      return r0;
    case T::kInt32:
      if (r32 == 0x80000000u) return std::nullopt;
      return static_cast<int32_t>(r32);
    case T::kUint32:
    case T::kBitfield32:
      if (r32 == 0xFFFFFFFFu) return std::nullopt;
      return r32;
    case T::kAcc32:
      if (r32 == 0) return std::nullopt;
      return r32;
  }
  return std::nullopt;
}

std::optional<int> ModelData::ScaleFactorOf(std::string_view point) const {
  const PointDef* p = Find(point);
  if (!p) return std::nullopt;
  if (p->scale_factor.empty()) return 0;
  auto sf = Raw(p->scale_factor);
  if (!sf || *sf < -kMaxScaleFactor || *sf > kMaxScaleFactor) return std::nullopt;
  return static_cast<int>(*sf);
}

std::optional<double> ModelData::Value(std::string_view point) const {
  auto raw = Raw(point);
  auto sf = ScaleFactorOf(point);
  if (!raw || !sf) return std::nullopt;
  return static_cast<double>(*raw) * std::pow(10.0, *sf);
}

StatusOr<RegisterWrite> EncodePoint(const ModelData& model, std::string_view point, double value) {
  std::string name = fmt::format("{}.{}", model.id(), point);
  const PointDef* p = model.Find(point);
  auto address = model.AddressOf(point);
  if (!p || !address) return Error(fmt::format("point {} is not in the device's model", name));
  auto sf = model.ScaleFactorOf(point);
  if (!sf) return Error(fmt::format("point {}: its scale factor is not implemented", name));
  if (!std::isfinite(value))
    return Error(fmt::format("point {}: value {} is not finite", name, value));
  double scaled = std::round(value / std::pow(10.0, *sf));
  double lo = 0;
  double hi = 0;
  switch (p->type) {
    case T::kInt16:
      lo = -32767;  // 0x8000 means "not implemented"
      hi = 32767;
      break;
    case T::kUint16:
    case T::kEnum16:
    case T::kBitfield16:
      hi = 65534;
      break;
    case T::kInt32:
      lo = -2147483647.0;
      hi = 2147483647.0;
      break;
    case T::kUint32:
    case T::kBitfield32:
      hi = 4294967294.0;
      break;
    default:
      return Error(fmt::format("point {} is not writable", name));
  }
  if (scaled < lo || scaled > hi) {
    return Error(fmt::format("point {}: {} scaled by 10^{} is {}, outside [{}, {}]", name, value,
                             *sf, scaled, lo, hi));
  }
  RegisterWrite w;
  w.address = *address;
  w.point = name;
  if (Size(p->type) == 1) {
    w.values = {static_cast<uint16_t>(static_cast<int32_t>(scaled) & 0xFFFF)};
  } else {
    auto bits = static_cast<uint32_t>(static_cast<int64_t>(scaled) & 0xFFFFFFFF);
    w.values = {static_cast<uint16_t>(bits >> 16), static_cast<uint16_t>(bits & 0xFFFF)};
  }
  return w;
}

}  // namespace derms::sunspec
