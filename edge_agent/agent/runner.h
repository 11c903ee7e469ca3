// Drives a set of edge agents from one thread: the loop shared by
// derms-edge-agent (one agent) and derms-fleet (many).
#ifndef DERMS_EDGE_AGENT_AGENT_RUNNER_H_
#define DERMS_EDGE_AGENT_AGENT_RUNNER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "edge_agent/agent/edge_agent.h"

namespace derms::edge {

struct RunnerOptions {
  // Wall-clock time between ticks of every agent.
  std::chrono::milliseconds tick{50};
  // Called about once a second of wall time (progress lines); may be empty.
  std::function<void()> on_second;
};

// Ticks every agent until `stop` is set, then shuts each down cleanly
// (offline status, DISCONNECT). Blocks the calling thread.
void RunAgents(const std::vector<std::unique_ptr<EdgeAgent>>& agents, const Clock& clock,
               const std::atomic<bool>& stop, const RunnerOptions& options = {});

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_AGENT_RUNNER_H_
