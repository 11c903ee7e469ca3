#include "common/codec.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

namespace derms::codec {

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
