// A SunSpec register image for tests: "SunS", then models laid out as the
// published SunSpec definitions say, then the end marker. The point offsets
// here are written down from the definitions on their own (not taken from the
// adapter's tables), so a wrong offset in the adapter fails the tests.
#ifndef DERMS_TESTS_SUPPORT_SUNSPEC_IMAGE_H_
#define DERMS_TESTS_SUPPORT_SUNSPEC_IMAGE_H_

#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace derms::testing {

class SunSpecImage {
 public:
  explicit SunSpecImage(uint32_t base = 40000) : base_(base) { regs_ = {0x5375, 0x6E53}; }

  // Appends model `id` with the published length; every point starts as
  // "not implemented" (0xFFFF), except ID and L.
  SunSpecImage& Add(uint16_t id) {
    uint16_t length = Length(id);
    starts_[id] = base_ + static_cast<uint32_t>(regs_.size());
    regs_.push_back(id);
    regs_.push_back(length);
    regs_.insert(regs_.end(), length, 0xFFFF);
    return *this;
  }
  // Appends the end marker (0xFFFF, 0).
  SunSpecImage& End() {
    regs_.push_back(0xFFFF);
    regs_.push_back(0);
    return *this;
  }
  // Sets a point's raw value (16 or 32 bits, two's complement for negatives).
  SunSpecImage& Raw(uint16_t model, const std::string& point, int64_t raw) {
    auto [offset, size] = Point(model, point);
    uint32_t at = Address(model) - base_ + offset;
    if (size == 2) {
      auto bits = static_cast<uint32_t>(raw);
      regs_.at(at) = static_cast<uint16_t>(bits >> 16);
      regs_.at(at + 1) = static_cast<uint16_t>(bits & 0xFFFF);
    } else {
      regs_.at(at) = static_cast<uint16_t>(raw & 0xFFFF);
    }
    return *this;
  }
  // Sets a point to `value` with scale factor `sf`, writing both.
  SunSpecImage& Scaled(uint16_t model, const std::string& point, double value,
                       const std::string& sf_point, int sf) {
    Raw(model, sf_point, sf);
    return Raw(model, point, std::llround(value / std::pow(10.0, sf)));
  }
  uint32_t Address(uint16_t model) const { return starts_.at(model); }
  uint32_t AddressOf(uint16_t model, const std::string& point) const {
    return Address(model) + Point(model, point).first;
  }
  uint16_t At(uint32_t address) const { return regs_.at(address - base_); }
  uint32_t base() const { return base_; }
  std::vector<uint16_t>& registers() { return regs_; }
  const std::vector<uint16_t>& registers() const { return regs_; }

  // Reads as a device would, failing outside the image.
  Status Read(uint32_t address, uint16_t count, std::vector<uint16_t>* out) const {
    if (address < base_ || address + count > base_ + regs_.size()) {
      return Status::Error("modbus_error", "Illegal data address");
    }
    out->assign(regs_.begin() + (address - base_), regs_.begin() + (address - base_ + count));
    return Status::Ok();
  }

  static uint16_t Length(uint16_t id) {
    static const std::map<uint16_t, uint16_t> lengths = {
        {1, 66},   {101, 50}, {102, 50},  {103, 50}, {120, 26}, {121, 30},
        {123, 24}, {124, 24}, {701, 153}, {702, 50}, {704, 65}, {802, 62}};
    return lengths.at(id);
  }

  // (offset from the ID register, size) from the SunSpec model definitions.
  static std::pair<uint16_t, int> Point(uint16_t model, const std::string& point) {
    using Table = std::map<std::string, std::pair<uint16_t, int>>;
    static const Table inverter = {{"A", {2, 1}},       {"PhVphA", {10, 1}}, {"PhVphB", {11, 1}},
                                   {"PhVphC", {12, 1}}, {"V_SF", {13, 1}},   {"W", {14, 1}},
                                   {"W_SF", {15, 1}},   {"Hz", {16, 1}},     {"Hz_SF", {17, 1}},
                                   {"VAr", {20, 1}},    {"VAr_SF", {21, 1}}, {"WH", {24, 2}},
                                   {"WH_SF", {26, 1}},  {"St", {38, 1}},     {"Evt1", {40, 2}}};
    static const std::map<uint16_t, Table> tables = {
        {1, {{"DA", {66, 1}}}},
        {101, inverter},
        {102, inverter},
        {103, inverter},
        {120,
         {{"DERTyp", {2, 1}},
          {"WRtg", {3, 1}},
          {"WRtg_SF", {4, 1}},
          {"WHRtg", {19, 1}},
          {"WHRtg_SF", {20, 1}},
          {"MaxChaRte", {23, 1}},
          {"MaxChaRte_SF", {24, 1}},
          {"MaxDisChaRte", {25, 1}},
          {"MaxDisChaRte_SF", {26, 1}}}},
        {121, {{"WMax", {2, 1}}, {"WMax_SF", {22, 1}}}},
        {123,
         {{"Conn", {4, 1}},
          {"WMaxLimPct", {5, 1}},
          {"WMaxLimPct_RvrtTms", {7, 1}},
          {"WMaxLim_Ena", {9, 1}},
          {"WMaxLimPct_SF", {23, 1}}}},
        {124,
         {{"WChaMax", {2, 1}},
          {"StorCtl_Mod", {5, 1}},
          {"MinRsvPct", {7, 1}},
          {"ChaState", {8, 1}},
          {"ChaSt", {11, 1}},
          {"OutWRte", {12, 1}},
          {"InWRte", {13, 1}},
          {"WChaMax_SF", {18, 1}},
          {"MinRsvPct_SF", {21, 1}},
          {"ChaState_SF", {22, 1}},
          {"InOutWRte_SF", {25, 1}}}},
        {701,
         {{"InvSt", {4, 1}},
          {"Alrm", {6, 2}},
          {"W", {10, 1}},
          {"Var", {12, 1}},
          {"LNV", {16, 1}},
          {"Hz", {17, 2}},
          {"V_SF", {114, 1}},
          {"Hz_SF", {115, 1}},
          {"W_SF", {116, 1}},
          {"Var_SF", {119, 1}}}},
        {702, {{"WMaxRtg", {2, 1}}, {"WMax", {26, 1}}, {"W_SF", {45, 1}}}},
        {704,
         {{"WMaxLimPctEna", {14, 1}},
          {"WMaxLimPct", {15, 1}},
          {"WSetEna", {22, 1}},
          {"WSetMod", {23, 1}},
          {"WSet", {24, 2}},
          {"WMaxLimPct_SF", {54, 1}},
          {"WSet_SF", {55, 1}}}},
        {802,
         {{"WHRtg", {3, 1}},
          {"WChaRteMax", {4, 1}},
          {"WDisChaRteMax", {5, 1}},
          {"SoC", {11, 1}},
          {"State", {22, 1}},
          {"Evt1", {26, 2}},
          {"WHRtg_SF", {53, 1}},
          {"WChaDisChaMax_SF", {54, 1}},
          {"SoC_SF", {56, 1}}}},
    };
    const Table& t = tables.at(model);
    auto it = t.find(point);
    if (it == t.end()) throw std::out_of_range("no point " + point);
    return it->second;
  }

 private:
  uint32_t base_;
  std::vector<uint16_t> regs_;
  std::map<uint16_t, uint32_t> starts_;
};

}  // namespace derms::testing

#endif  // DERMS_TESTS_SUPPORT_SUNSPEC_IMAGE_H_
