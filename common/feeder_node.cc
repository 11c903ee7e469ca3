#include "common/feeder_node.h"

#include <fmt/format.h>

#include "common/topics.h"

namespace derms {

StatusOr<FeederNode> ParseFeederNode(std::string_view field, std::string_view text) {
  auto fail = [&] {
    return Status::Error(
        "invalid_field",
        fmt::format("{} '{}' is not bus.phase (bus [A-Za-z0-9_-]{{1,64}}, phase 1, 2 or 3)",
                    field, text.substr(0, 80)));
  };
  size_t dot = text.rfind('.');
  if (dot == std::string_view::npos || dot + 2 != text.size()) return fail();
  std::string_view bus = text.substr(0, dot);
  char phase = text[dot + 1];
  if (!topics::IsValidId(bus) || phase < '1' || phase > '3') return fail();
  return FeederNode{std::string(bus), phase - '0'};
}

}  // namespace derms
