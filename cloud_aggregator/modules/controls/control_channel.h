// How modules send DERs what to do: a Control (published, stored, counted)
// or a node command (REBIRTH, RETURN_TO_DEFAULT). Implemented by the
// controls module; modules that send controls are handed it.
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_CONTROLS_CONTROL_CHANNEL_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_CONTROLS_CONTROL_CHANNEL_H_

#include <cstdint>
#include <string>

#include "derms/v1/derms.pb.h"

namespace derms::aggregator {

class ControlChannel {
 public:
  virtual ~ControlChannel() = default;
  // Publishes `control` on der/{der_id}/control and stores it (`run_id`: the
  // dispatch run that sent it, 0 for none).
  virtual void SendControl(derms::v1::Control control, const std::string& der_id,
                           int64_t run_id) = 0;
  virtual void SendCommand(const std::string& der_id, derms::v1::NodeCommandType type,
                           const std::string& reason, int64_t now_ms) = 0;
};

// What a module that sent controls hears of the answers (after the controls
// module decoded, validated and stored them, and updated the ledger).
class ControlAnswers {
 public:
  virtual ~ControlAnswers() = default;
  virtual void OnControlResponse(const std::string& der_id, const derms::v1::ControlResponse& r,
                                 int64_t now_ms) = 0;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_CONTROLS_CONTROL_CHANNEL_H_
