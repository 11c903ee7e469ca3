#include "common/codec.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <memory>
#include <string_view>
#include <vector>

namespace derms::codec {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Decimal places a field of this name is shown with; -1: as it is.
int DecimalsFor(std::string_view name) {
  for (std::string_view unit : {"_kw", "_kwh", "_kvar", "_hz"}) {
    if (EndsWith(name, unit)) return 3;
  }
  if (EndsWith(name, "_per_mwh") || name == "cost" || EndsWith(name, "_cost")) return 2;
  if (EndsWith(name, "_pct") || EndsWith(name, "_v")) return 2;
  if (EndsWith(name, "_pu") || name == "efficiency") return 4;
  return -1;
}

double Rounded(double value, int decimals) {
  if (!std::isfinite(value)) return value;
  const double scale = std::pow(10.0, decimals);
  // Past 2^52 a double has no fraction left to round.
  if (std::abs(value * scale) >= 4.5e15) return value;
  // Dividing the whole number by the exact power of ten gives the double
  // nearest the decimal, which prints as that decimal.
  double r = std::round(value * scale) / scale;
  return r == 0 ? 0.0 : r;
}

}  // namespace

void RoundForPeople(google::protobuf::Message* msg) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = msg->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*msg, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_map()) continue;  // no map of this schema holds doubles
      if (f->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(*msg, f); ++i) {
          RoundForPeople(reflection->MutableRepeatedMessage(msg, f, i));
        }
      } else {
        RoundForPeople(reflection->MutableMessage(msg, f));
      }
      continue;
    }
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_DOUBLE) continue;
    const int decimals = DecimalsFor(f->name());
    if (decimals < 0) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(*msg, f); ++i) {
        reflection->SetRepeatedDouble(msg, f, i,
                                      Rounded(reflection->GetRepeatedDouble(*msg, f, i), decimals));
      }
    } else {
      reflection->SetDouble(msg, f, Rounded(reflection->GetDouble(*msg, f), decimals));
    }
  }
}

std::string ToOperatorJson(const google::protobuf::Message& msg) {
  std::unique_ptr<google::protobuf::Message> copy(msg.New());
  copy->CopyFrom(msg);
  RoundForPeople(copy.get());
  return ToJson(*copy);
}

bool LooksLikeJson(std::string_view payload) {
  for (char c : payload) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '{';
  }
  return false;
}

Status ParseBinary(std::string_view payload, std::string_view what,
                   google::protobuf::Message* out) {
  out->Clear();
  if (!out->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    std::string rule =
        fmt::format("payload of {} bytes is not a protobuf {}", payload.size(), out->GetTypeName());
    return Status::Error("decode_error", what.empty() ? rule : fmt::format("{}: {}", what, rule));
  }
  return Status::Ok();
}

Status ParseJson(std::string_view payload, std::string_view what, google::protobuf::Message* out) {
  out->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(payload.data(), payload.size()), out, options);
  if (!status.ok()) {
    return Status::Error("decode_error",
                         fmt::format("{}: JSON is not a valid {}: {}", what, out->GetTypeName(),
                                     std::string(status.message())));
  }
  return Status::Ok();
}

Status ParseDevice(std::string_view payload, std::string_view kind, std::string_view der_id,
                   google::protobuf::Message* out) {
  Status s = ParseBinary(payload, "", out);
  if (s.ok()) return s;
  return Status::Error(s.code(), fmt::format("{} from der '{}': {}", kind, der_id, s.message()));
}

Status ParseOperator(std::string_view payload, std::string_view what,
                     google::protobuf::Message* out) {
  return LooksLikeJson(payload) ? ParseJson(payload, what, out) : ParseBinary(payload, what, out);
}

std::string ToJson(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  // Printing a well-formed message cannot fail; an empty object is the fallback.
  if (!google::protobuf::util::MessageToJsonString(msg, &out, options).ok()) out = "{}";
  return out;
}

std::string ToBinary(const google::protobuf::Message& msg) { return msg.SerializeAsString(); }

}  // namespace derms::codec
