// Payload encoding of the wire contract. Device-facing topics carry protobuf
// binary; operator-facing topics accept binary or protobuf's canonical JSON
// (a payload whose first non-blank byte is '{' is JSON) and are published as
// JSON with the contract's snake_case field names.
#ifndef DERMS_COMMON_CODEC_H_
#define DERMS_COMMON_CODEC_H_

#include <google/protobuf/message.h>

#include <string>
#include <string_view>

#include "common/status.h"

namespace derms::codec {

// True when the first non-blank byte of `payload` is '{'.
bool LooksLikeJson(std::string_view payload);

// Parses protobuf binary into `out` (cleared first). Error "decode_error"
// names `what` (e.g. "telemetry from der 'bat-1'") when it is not empty.
Status ParseBinary(std::string_view payload, std::string_view what, google::protobuf::Message* out);
// A device-facing (binary) payload from a DER: `kind` ("telemetry") and
// `der_id` name it in the error, a description built only when decoding fails
// (this runs for every message).
Status ParseDevice(std::string_view payload, std::string_view kind, std::string_view der_id,
                   google::protobuf::Message* out);
// Parses canonical JSON (unknown fields rejected) into `out`.
Status ParseJson(std::string_view payload, std::string_view what, google::protobuf::Message* out);
// JSON when LooksLikeJson, otherwise binary: for operator-facing topics.
Status ParseOperator(std::string_view payload, std::string_view what,
                     google::protobuf::Message* out);

// One-line canonical JSON with snake_case names and zero values printed.
std::string ToJson(const google::protobuf::Message& msg);
std::string ToBinary(const google::protobuf::Message& msg);

// What people read: every double field of `msg` (nested messages included)
// rounded to the precision its unit means something at, by the field's
// name: kW, kWh, kvar and Hz to 0.001, prices (`_per_mwh`) and costs
// (`cost`, `_cost`) to 0.01, `_pct` and `_v` to 0.01, `_pu` and
// `efficiency` to 0.0001; other doubles (latitude, ...) and non-finite
// values are left as they are, and -0 becomes 0. For the JSON published on
// operator topics and printed by tools; device-facing binary keeps full
// precision.
void RoundForPeople(google::protobuf::Message* msg);
// ToJson of a copy of `msg` rounded by RoundForPeople.
std::string ToOperatorJson(const google::protobuf::Message& msg);

}  // namespace derms::codec

#endif  // DERMS_COMMON_CODEC_H_
