#include "broker_plugin/payload_check.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/unknown_field_set.h>

#include <cmath>
#include <string>

#include "cloud_aggregator/registry/validation.h"
#include "common/topics.h"

namespace derms::broker {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

std::string_view LeafName(DerLeaf leaf) {
  switch (leaf) {
    case DerLeaf::kBirth:
      return "birth";
    case DerLeaf::kStatus:
      return "status";
    case DerLeaf::kTelemetry:
      return "telemetry";
    case DerLeaf::kResponse:
      return "response";
    case DerLeaf::kControl:
      return "control";
    case DerLeaf::kCmd:
      return "cmd";
  }
  return "?";
}

Status Refuse(std::string_view reason, DerLeaf leaf, std::string_view der_id,
              std::string_view rule) {
  return Status::Error(std::string(reason),
                       fmt::format("{} from der '{}': {}", LeafName(leaf), der_id, rule));
}

// The first field holding a NaN or an infinity, or a field the message type
// does not have (an unknown field: another message's bytes), nested
// messages included. `path` is built only on failure.
Status Walk(const Message& m, DerLeaf leaf, std::string_view der_id, int depth) {
  const auto* reflection = m.GetReflection();
  if (!reflection->GetUnknownFields(m).empty()) {
    return Refuse(kReasonWrongType, leaf, der_id,
                  fmt::format("payload holds fields a {} does not have (another message type?)",
                              m.GetDescriptor()->name()));
  }
  if (depth > 8) return Status::Ok();
  const auto* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const auto type = f->cpp_type();
    if (type != FieldDescriptor::CPPTYPE_DOUBLE && type != FieldDescriptor::CPPTYPE_FLOAT &&
        type != FieldDescriptor::CPPTYPE_MESSAGE) {
      continue;
    }
    if (f->is_repeated()) {
      int n = reflection->FieldSize(m, f);
      for (int k = 0; k < n; ++k) {
        if (type == FieldDescriptor::CPPTYPE_MESSAGE) {
          Status s = Walk(reflection->GetRepeatedMessage(m, f, k), leaf, der_id, depth + 1);
          if (!s.ok()) return s;
        } else {
          double v = type == FieldDescriptor::CPPTYPE_DOUBLE
                         ? reflection->GetRepeatedDouble(m, f, k)
                         : reflection->GetRepeatedFloat(m, f, k);
          if (!std::isfinite(v)) {
            return Refuse(kReasonNotFinite, leaf, der_id,
                          fmt::format("{}[{}] {} is not a finite number", f->name(), k, v));
          }
        }
      }
      continue;
    }
    if (type == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (reflection->HasField(m, f)) {
        Status s = Walk(reflection->GetMessage(m, f), leaf, der_id, depth + 1);
        if (!s.ok()) return s;
      }
      continue;
    }
    double v = type == FieldDescriptor::CPPTYPE_DOUBLE ? reflection->GetDouble(m, f)
                                                       : reflection->GetFloat(m, f);
    if (!std::isfinite(v)) {
      return Refuse(kReasonNotFinite, leaf, der_id,
                    fmt::format("{} {} is not a finite number", f->name(), v));
    }
  }
  return Status::Ok();
}

// The aggregator's validators say "invalid_field" for a value outside the
// contract's ranges; here that is out_of_range.
Status FromRegistry(Status s) {
  if (s.ok()) return s;
  if (s.code() == "id_mismatch") return Status::Error(std::string(kReasonIdMismatch), s.message());
  return Status::Error(std::string(kReasonOutOfRange), s.message());
}

}  // namespace

bool ParseDerTopic(std::string_view topic, std::string_view* der_id, DerLeaf* leaf) {
  constexpr std::string_view kPrefix = "derms/v1/der/";
  if (topic.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view rest = topic.substr(kPrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view id = rest.substr(0, slash);
  std::string_view name = rest.substr(slash + 1);
  if (!topics::IsValidId(id)) return false;
  if (name == "telemetry") {
    *leaf = DerLeaf::kTelemetry;
  } else if (name == "birth") {
    *leaf = DerLeaf::kBirth;
  } else if (name == "status") {
    *leaf = DerLeaf::kStatus;
  } else if (name == "response") {
    *leaf = DerLeaf::kResponse;
  } else if (name == "control") {
    *leaf = DerLeaf::kControl;
  } else if (name == "cmd") {
    *leaf = DerLeaf::kCmd;
  } else {
    return false;
  }
  *der_id = id;
  return true;
}

PayloadVerdict PayloadChecker::Check(std::string_view topic, std::string_view payload,
                                     int64_t now_ms) {
  PayloadVerdict v;
  std::string_view der_id;
  if (!ParseDerTopic(topic, &der_id, &v.leaf)) return v;
  v.device_topic = true;
  if (static_cast<int64_t>(payload.size()) > max_payload_bytes_) {
    v.status = Refuse(kReasonOversized, v.leaf, der_id,
                      fmt::format("payload of {} bytes is over the {} allowed", payload.size(),
                                  max_payload_bytes_));
    return v;
  }
  Message* m = nullptr;
  switch (v.leaf) {
    case DerLeaf::kBirth:
      m = &birth_;
      break;
    case DerLeaf::kStatus:
      m = &status_;
      break;
    case DerLeaf::kTelemetry:
      m = &telemetry_;
      break;
    case DerLeaf::kResponse:
      m = &response_;
      break;
    case DerLeaf::kControl:
      m = &control_;
      break;
    case DerLeaf::kCmd:
      m = &cmd_;
      break;
  }
  if (!m->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    v.status = Refuse(
        kReasonUndecodable, v.leaf, der_id,
        fmt::format("{} bytes are not a protobuf {}", payload.size(), m->GetDescriptor()->name()));
    return v;
  }
  v.status = Walk(*m, v.leaf, der_id, 0);
  if (!v.status.ok()) return v;
  switch (v.leaf) {
    case DerLeaf::kBirth:
      v.status = FromRegistry(registry::ValidateBirth(birth_, der_id));
      v.telemetry_interval_s = birth_.telemetry_interval_s();
      break;
    case DerLeaf::kStatus:
      v.status = FromRegistry(registry::ValidateStatus(status_, der_id));
      break;
    case DerLeaf::kTelemetry:
      v.status = FromRegistry(registry::ValidateTelemetry(telemetry_, der_id, now_ms));
      v.historical = telemetry_.is_historical();
      break;
    case DerLeaf::kResponse:
      v.status = FromRegistry(registry::ValidateResponse(response_, der_id));
      break;
    case DerLeaf::kControl:
      // The edge answers an empty or impossible control itself (REJECTED
      // with its reason); a control addressed to another DER is a forgery.
      if (!control_.der_id().empty() && control_.der_id() != der_id) {
        v.status = Refuse(kReasonIdMismatch, v.leaf, der_id,
                          fmt::format("der_id '{}' does not match the topic's '{}'",
                                      control_.der_id().substr(0, 80), der_id));
      }
      break;
    case DerLeaf::kCmd:
      break;
  }
  return v;
}

}  // namespace derms::broker
