// Validation of what is published on der/{der_id}/<leaf>, before it reaches
// anyone: the payload must be the contract's message for that leaf
// (DerBirth, DerStatus, Telemetry, ControlResponse, Control, NodeCommand),
// decode, carry no field the message does not have, name the topic's DER,
// hold only finite numbers, and keep every field within the contract's
// ranges (the aggregator's own checks, cloud_aggregator/registry/
// validation.h). The error code of a refusal is the reason it is counted
// under in broker/status.
#ifndef DERMS_BROKER_PLUGIN_PAYLOAD_CHECK_H_
#define DERMS_BROKER_PLUGIN_PAYLOAD_CHECK_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/status.h"
#include "derms/v1/derms.pb.h"

namespace derms::broker {

// Reasons (Status codes) for refusing a payload.
inline constexpr std::string_view kReasonOversized = "oversized";
inline constexpr std::string_view kReasonUndecodable = "undecodable";
inline constexpr std::string_view kReasonWrongType = "wrong_type";
inline constexpr std::string_view kReasonIdMismatch = "id_mismatch";
inline constexpr std::string_view kReasonNotFinite = "not_finite";
inline constexpr std::string_view kReasonOutOfRange = "out_of_range";

// The leaves of der/{der_id}/<leaf>.
enum class DerLeaf { kBirth, kStatus, kTelemetry, kResponse, kControl, kCmd };

// "derms/v1/der/{der_id}/<leaf>" split; false for any other topic.
bool ParseDerTopic(std::string_view topic, std::string_view* der_id, DerLeaf* leaf);

struct PayloadVerdict {
  Status status;  // Ok, or the refusal: code is the reason, message names DER, field and rule
  bool device_topic = false;  // the topic was der/{der_id}/<leaf>
  DerLeaf leaf = DerLeaf::kBirth;
  // From an accepted birth: the DER's declared telemetry interval, seconds.
  double telemetry_interval_s = 0;
  // From accepted telemetry: sent late from the edge's offline buffer.
  bool historical = false;
};

// Not thread-safe: keeps one message of each type to decode into (the
// plugin runs on Mosquitto's single thread).
class PayloadChecker {
 public:
  // `max_payload_bytes`: larger payloads are refused as oversized.
  explicit PayloadChecker(int64_t max_payload_bytes) : max_payload_bytes_(max_payload_bytes) {}

  // Checks a message published on `topic`; topics other than der/... are
  // not this checker's business and pass (device_topic false). `now_ms`:
  // wall clock, for timestamps too far ahead.
  PayloadVerdict Check(std::string_view topic, std::string_view payload, int64_t now_ms);

 private:
  int64_t max_payload_bytes_;
  derms::v1::DerBirth birth_;
  derms::v1::DerStatus status_;
  derms::v1::Telemetry telemetry_;
  derms::v1::ControlResponse response_;
  derms::v1::Control control_;
  derms::v1::NodeCommand cmd_;
};

}  // namespace derms::broker

#endif  // DERMS_BROKER_PLUGIN_PAYLOAD_CHECK_H_
