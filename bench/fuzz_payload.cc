// libFuzzer target over the broker plugin's validation entry point
// (broker::Guard::CheckMessage: topic parsing, payload decoding, unknown
// fields, finite numbers, the contract's ranges, the rate limiter). Built
// with clang only, by bench/fuzz_plugin.sh in its own tree; never by ctest.
//
// The first byte picks the topic: one of the six der/{id}/<leaf> topics, or
// (7) a topic read from the input up to its first NUL; the rest is the
// payload.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "broker_plugin/guard.h"

namespace {

derms::broker::Guard& TheGuard() {
  static derms::broker::Guard* guard = [] {
    derms::broker::PluginOptions o;
    o.kick_after_drops = 100;
    return new derms::broker::Guard(o, std::nullopt, 1796000000000);
  }();
  return *guard;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* kLeaves[] = {"birth", "status", "telemetry", "response", "control", "cmd"};
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string topic;
  const uint8_t mode = data[0] % 7;
  if (mode < 6) {
    topic = std::string("derms/v1/der/fuzz-1/") + kLeaves[mode];
  } else {
    size_t nul = rest.find('\0');
    topic = std::string(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  }
  static int64_t mono_ms = 0;
  mono_ms += 7;
  static int client = 0;
  derms::broker::Decision d =
      TheGuard().CheckMessage(&client, "fuzz-1", topic, rest, 1796000000000, mono_ms);
  // A refusal always says why.
  if (!d.allowed && d.reason.empty()) __builtin_trap();
  (void)TheGuard().TakeKicks();
  return 0;
}
