// Where a DER connects in its feeder's model: a bus and one phase, written
// as OpenDSS writes them ("48.1"). Carried in DerBirth.feeder_node; read by
// the edge's options, the cloud's birth checks and feeder curtailment.
#ifndef DERMS_COMMON_FEEDER_NODE_H_
#define DERMS_COMMON_FEEDER_NODE_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace derms {

struct FeederNode {
  std::string bus;  // [A-Za-z0-9_-]{1,64}, as the feeder model names it
  int phase = 0;    // 1, 2 or 3

  std::string ToString() const { return bus + "." + std::to_string(phase); }
};

// Parses "bus.phase". Errors ("invalid_field") name `field`, the text and
// the rule.
[[nodiscard]] StatusOr<FeederNode> ParseFeederNode(std::string_view field, std::string_view text);

}  // namespace derms

#endif  // DERMS_COMMON_FEEDER_NODE_H_
