// SunSpec register maps as plain data: discovery of the model chain at a
// device's base address, and reading and writing points with their scale
// factors. No Modbus here: registers come through a reader the caller hands
// in (libmodbus in sunspec_device.h, a vector in the unit tests).
//
// A SunSpec device holds, from its base address (usually 40000): the marker
// "SunS" (0x5375 0x6E53), then models one after another, each an ID register,
// a length register L (registers that follow, not counting ID and L) and L
// registers of points; an ID of 0xFFFF ends the chain. Point offsets here
// count from the model's ID register, as the SunSpec model definitions do.
#ifndef DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_MODEL_H_
#define DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_MODEL_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace derms::sunspec {

constexpr uint16_t kMarkerHigh = 0x5375;  // "Su"
constexpr uint16_t kMarkerLow = 0x6E53;   // "nS"
constexpr uint16_t kEndOfChain = 0xFFFF;
// Most registers one Modbus read may return.
constexpr uint16_t kMaxReadRegisters = 125;

// Reads `count` registers (count <= kMaxReadRegisters) from `address` into
// `out`; an error names the device and the Modbus reason.
using RegisterReader =
    std::function<Status(uint32_t address, uint16_t count, std::vector<uint16_t>* out)>;

// One model of the chain: where its ID register is and how long it is.
struct ModelHeader {
  uint16_t id = 0;
  uint16_t length = 0;   // L: registers after ID and L
  uint32_t address = 0;  // of the ID register
};

// Walks the chain at `base_address`. Errors: "sunspec_error" when the marker
// is missing, the chain runs past the 16-bit register space or holds more
// than 64 models, or a read fails (its message kept).
StatusOr<std::vector<ModelHeader>> DiscoverModels(uint32_t base_address,
                                                  const RegisterReader& read);

// Reads a whole model (ID, L and its points) in reads of at most
// kMaxReadRegisters. The block read must start with the header's ID and L.
StatusOr<std::vector<uint16_t>> ReadModel(const ModelHeader& header, const RegisterReader& read);

enum class PointType {
  kInt16,
  kUint16,
  kAcc16,
  kEnum16,
  kBitfield16,
  kSunssf,
  kInt32,
  kUint32,
  kAcc32,
  kBitfield32,
};

// A point of a model this adapter uses (the rest of each model is skipped).
struct PointDef {
  std::string_view name;
  uint16_t offset;  // from the model's ID register
  PointType type;
  std::string_view scale_factor;  // the sunssf point scaling it, or empty
};

struct ModelDef {
  uint16_t id;
  std::string_view name;
  uint16_t length;  // L of the published definition
  std::vector<PointDef> points;
};

// The models this adapter understands: 1, 101, 102, 103, 120, 121, 123, 124,
// 701, 702, 704, 802. nullptr for any other id.
const ModelDef* FindModelDef(uint16_t id);
std::vector<uint16_t> SupportedModelIds();

// A model's registers as read, decoded point by point. Values are nullopt
// when the point is absent (a short model), or holds the type's
// "not implemented" value (int16 0x8000, uint16/enum16/bitfield16 0xFFFF,
// acc16/acc32 0, int32 0x80000000, uint32/bitfield32 0xFFFFFFFF), or its
// scale factor is not implemented or outside [-10, 10].
class ModelData {
 public:
  // REQUIRES: `registers` start with the model's ID register.
  ModelData(const ModelDef* def, uint32_t address, std::vector<uint16_t> registers)
      : def_(def), address_(address), registers_(std::move(registers)) {}

  uint16_t id() const { return def_->id; }
  uint32_t address() const { return address_; }
  const std::vector<uint16_t>& registers() const { return registers_; }

  // The raw integer of a point (sign-extended for int16/int32).
  std::optional<int64_t> Raw(std::string_view point) const;
  // The point's value times 10^scale factor.
  std::optional<double> Value(std::string_view point) const;
  // The scale factor applying to `point` (0 when it has none).
  std::optional<int> ScaleFactorOf(std::string_view point) const;
  // Absolute register address of a point, or nullopt when not in the model.
  std::optional<uint32_t> AddressOf(std::string_view point) const;
  const PointDef* Find(std::string_view point) const;

 private:
  const ModelDef* def_;
  uint32_t address_;
  std::vector<uint16_t> registers_;
};

// A register write: `values` go to consecutive registers from `address`.
struct RegisterWrite {
  uint32_t address = 0;
  std::vector<uint16_t> values;
  std::string point;  // "123.WMaxLimPct", for messages
};

// Encodes `value` for `point` of `model` using the scale factor read with
// the model. Errors ("sunspec_error") when the point is not in the model,
// its scale factor is not implemented, or the scaled value does not fit the
// point's type.
StatusOr<RegisterWrite> EncodePoint(const ModelData& model, std::string_view point, double value);

}  // namespace derms::sunspec

#endif  // DERMS_EDGE_AGENT_SUNSPEC_SUNSPEC_MODEL_H_
