#include "edge_agent/agent/runner.h"

#include <thread>

namespace derms::edge {

void RunAgents(const std::vector<std::unique_ptr<EdgeAgent>>& agents, const Clock& clock,
               const std::atomic<bool>& stop, const RunnerOptions& options) {
  auto next_second = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (!stop) {
    auto started = std::chrono::steady_clock::now();
    for (const auto& agent : agents) agent->Tick(clock.NowMs());
    if (options.on_second && started >= next_second) {
      options.on_second();
      next_second = started + std::chrono::seconds(1);
    }
    std::this_thread::sleep_until(started + options.tick);
  }
  for (const auto& agent : agents) agent->Shutdown(clock.NowMs());
}

}  // namespace derms::edge
