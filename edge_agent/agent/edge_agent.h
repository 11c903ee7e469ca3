// One DER's agent: the session of ../shared/CONTRACT.md (bd_seq, will, birth,
// status, rebirth), telemetry, and controls applied through ControlEngine to
// a Device. Non-blocking: Tick() does a slice of work and returns, so one
// thread can drive one agent (derms-edge-agent) or thousands (derms-fleet).
#ifndef DERMS_EDGE_AGENT_AGENT_EDGE_AGENT_H_
#define DERMS_EDGE_AGENT_AGENT_EDGE_AGENT_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/mqtt/mqtt_client.h"
#include "common/mqtt/session.h"
#include "edge_agent/agent/agent_options.h"
#include "edge_agent/agent/state_store.h"
#include "edge_agent/control/control_engine.h"
#include "edge_agent/devices/device.h"
#include "edge_agent/outbox/outbox.h"

namespace derms::edge {

// Counters for tests and the fleet's progress line. Read from any thread.
struct AgentCounters {
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> telemetry_sent{0};
  std::atomic<uint64_t> telemetry_buffered{0};
  std::atomic<uint64_t> telemetry_dropped{0};     // buffer full while offline (outbox caps)
  std::atomic<uint64_t> telemetry_historical{0};  // acknowledged from the outbox as historical
  std::atomic<uint64_t> controls_received{0};
  std::atomic<uint64_t> responses_sent{0};
  std::atomic<uint64_t> bad_messages{0};
};

class EdgeAgent {
 public:
  // REQUIRES: options.Validate().ok(); `device` matches options.nameplate.
  static StatusOr<std::unique_ptr<EdgeAgent>> Create(const AgentOptions& options,
                                                     std::unique_ptr<Device> device);
  ~EdgeAgent();

  // Advances the agent to simulated time `now_ms`. Call from one thread only,
  // often (every 10-100 ms of wall time).
  void Tick(int64_t now_ms);
  // Publishes an offline status and disconnects cleanly (no will).
  void Shutdown(int64_t now_ms);

  bool online() const { return session_.online(); }
  const AgentCounters& counters() const { return counters_; }
  const std::string& der_id() const { return options_.der_id; }
  uint64_t bd_seq() const { return state_store_.bd_seq(); }

 private:
  EdgeAgent(const AgentOptions& options, std::unique_ptr<Device> device, StateStore store,
            std::unique_ptr<mqtt::Client> client, std::unique_ptr<Outbox> outbox);
  Status PrepareConnect(int64_t now_ms, mqtt::ConnectOptions* connect);
  void GoOnline(int64_t now_ms);
  void HandleInbox(int64_t now_ms);
  void HandleControl(const mqtt::Message& m, int64_t now_ms);
  void HandleCommand(const mqtt::Message& m, int64_t now_ms);
  void Respond(const ControlEngine::Responses& responses);
  // When `responses` start the control in force, puts it in force on the
  // device; a device's refusal turns its APPLIED/CLAMPED into REJECTED.
  ControlEngine::Responses Confirm(ControlEngine::Responses responses, int64_t now_ms);
  void SendTelemetry(int64_t now_ms);
  void FlushBuffers();
  // SQLite outbox: collects acknowledgements, removes what was acknowledged,
  // and publishes the oldest unsent records as historical while online.
  void PumpOutbox(int64_t now_ms);
  void PollInFlight();
  void KeepInOutbox(derms::v1::Telemetry& t, int64_t now_ms);
  bool Send(const std::string& topic, const std::string& payload, int qos, bool retained);
  std::optional<double> SetpointNow() const;
  derms::v1::DerStatus StatusMessage(bool online, int64_t now_ms) const;

  const AgentOptions options_;
  std::unique_ptr<Device> device_;
  StateStore state_store_;
  std::unique_ptr<mqtt::Client> client_;
  ControlEngine engine_;
  AgentCounters counters_;

  mqtt::Session session_;
  int64_t next_telemetry_ms_ = 0;

  // Filled on Paho's callback thread, drained by Tick.
  std::mutex inbox_mutex_;
  std::vector<mqtt::Message> inbox_;  // GUARDED_BY(inbox_mutex_)

  // Outbox "sqlite": every sample is kept here until acknowledged.
  std::unique_ptr<Outbox> outbox_;
  struct InFlight {
    int64_t id;
    bool historical;
    mqtt::Pending pending;
    std::chrono::steady_clock::time_point sent;
  };
  std::deque<InFlight> in_flight_;  // publishes of outbox records not yet answered
  uint64_t dropped_reported_ = 0;   // outbox drops already counted and alarmed
  bool drop_alarm_due_ = false;     // the next sample carries a telemetry_dropped alarm
  uint64_t dropped_logged_ = 0;     // outbox drops already logged
  std::chrono::steady_clock::time_point drop_logged_at_{};
  bool outbox_failing_ = false;  // last outbox write failed (logged once per episode)
  bool outbox_checked_ = false;  // age cap applied at the first tick

  // Outbox "memory": kept while offline, sent after the next birth.
  std::deque<derms::v1::Telemetry> telemetry_buffer_;
  std::deque<derms::v1::ControlResponse> response_buffer_;
};

}  // namespace derms::edge

#endif  // DERMS_EDGE_AGENT_AGENT_EDGE_AGENT_H_
