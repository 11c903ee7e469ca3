// Checks every message the aggregator accepts against the contract's rules.
// Each error names the input (message kind and DER or substation), the field
// and the rule; its code ("invalid_field", "id_mismatch") is the key under
// which rejections are counted.
#ifndef DERMS_CLOUD_AGGREGATOR_REGISTRY_VALIDATION_H_
#define DERMS_CLOUD_AGGREGATOR_REGISTRY_VALIDATION_H_

#include <cstdint>
#include <string_view>

#include "common/status.h"
#include "derms/v1/derms.pb.h"

namespace derms::registry {

// `topic_id` is the identifier taken from the topic; the payload must agree.
Status ValidateBirth(const derms::v1::DerBirth& m, std::string_view topic_id);
Status ValidateStatus(const derms::v1::DerStatus& m, std::string_view topic_id);
// `now_ms`: timestamps more than a day ahead of it are rejected.
Status ValidateTelemetry(const derms::v1::Telemetry& m, std::string_view topic_id, int64_t now_ms);
Status ValidateResponse(const derms::v1::ControlResponse& m, std::string_view topic_id);
Status ValidateGridStatus(const derms::v1::GridStatus& m, std::string_view topic_id);
// REQUIRES: now_ms on the aggregator's clock (start_ms is checked against it).
Status ValidateDispatchRequest(const derms::v1::DispatchRequest& m, std::string_view topic_id,
                               int64_t now_ms);

}  // namespace derms::registry

#endif  // DERMS_CLOUD_AGGREGATOR_REGISTRY_VALIDATION_H_
