// The cloud aggregator's runtime. Data flows one way:
//   Paho callback thread -> inbound queue -> processing thread (decode,
//   validate, registry, dispatch decisions, publish) -> store writer thread.
// Nothing slow runs on Paho's thread; nothing on the processing thread waits
// for the disk.
#ifndef DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_H_
#define DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cloud_aggregator/dispatch/imbalance_split.h"
#include "cloud_aggregator/registry/der_registry.h"
#include "cloud_aggregator/service/aggregator_options.h"
#include "cloud_aggregator/storage/store.h"
#include "common/blocking_queue.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/mqtt_client.h"
#include "common/session.h"

namespace derms::aggregator {

// A snapshot of what the aggregator has done, for tests and status lines.
struct Stats {
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  uint64_t stale_ignored = 0;  // late wills, redelivered telemetry: by design, not errors
  std::map<std::string, uint64_t> rejected_by_reason;
  uint32_t ders_known = 0;
  uint32_t ders_online = 0;
  uint64_t dispatch_runs = 0;
  uint64_t controls_sent = 0;
  uint64_t responses = 0;
  uint64_t stored = 0;  // records committed to SQLite (or found already there)
  // Subscribed and its online status published: messages sent from now on
  // are processed.
  bool ready = false;
};

class Aggregator {
 public:
  static StatusOr<std::unique_ptr<Aggregator>> Create(const AggregatorOptions& options,
                                                      const Clock& clock);
  ~Aggregator();

  // Serves until `stop` is set, then publishes an offline status, disconnects
  // and commits what is queued. Blocks the calling thread.
  void Run(const std::atomic<bool>& stop);
  // Thread-safe.
  Stats stats() const;
  // Waits until every record accepted so far is committed (tests, backups).
  void FlushStore() { store_->Flush(); }
  const std::string& db_path() const { return store_->path(); }

 private:
  struct SubstationView {
    derms::v1::SubstationSummary summary;
    bool dirty = false;
  };
  struct SentControl {
    std::string substation_id;
    int64_t run_id;
    int64_t expires_ms;
  };

  Aggregator(const AggregatorOptions& options, const Clock& clock,
             std::unique_ptr<storage::Store> store, std::unique_ptr<mqtt::Client> client);

  void Handle(const mqtt::Message& m, int64_t now_ms);
  void HandleBirth(const std::string& der_id, const mqtt::Message& m, int64_t now_ms);
  void HandleStatus(const std::string& der_id, const mqtt::Message& m, int64_t now_ms);
  void HandleTelemetry(const std::string& der_id, const mqtt::Message& m, int64_t now_ms);
  void HandleResponse(const std::string& der_id, const mqtt::Message& m, int64_t now_ms);
  void HandleGridStatus(const std::string& substation_id, const mqtt::Message& m, int64_t now_ms);
  void HandleDispatchRequest(const std::string& vder_id, const mqtt::Message& m, int64_t now_ms);

  // One dispatch run at a substation: split `target_kw` of DER output across
  // the active DERs, send the setpoints, release DERs no longer needed.
  dispatch::SplitResult Dispatch(const std::string& substation_id, double target_kw,
                                 int64_t start_ms, int64_t duration_s, const std::string& trigger,
                                 const std::string& request_id, int64_t now_ms);
  std::vector<dispatch::DerCapability> ActiveCapabilities(const std::string& substation_id,
                                                          int64_t now_ms) const;

  void Periodic(int64_t now_ms);
  void PublishStatus(bool online, int64_t now_ms);
  std::string StatusJson(bool online, int64_t now_ms) const;
  void PublishSummaries(int64_t now_ms);
  void NoteOnlineChange(const registry::DerState& der, bool online, const std::string& cause,
                        int64_t now_ms);
  void Reject(const Status& s, const std::string& topic);
  void Accept() { ++accepted_; }
  void Publish(const std::string& topic, const std::string& payload, bool retained = false);
  void SendCommand(const std::string& der_id, derms::v1::NodeCommandType type,
                   const std::string& reason, int64_t now_ms);

  const AggregatorOptions options_;
  const Clock clock_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<mqtt::Client> client_;
  mqtt::Session session_;
  BlockingQueue<mqtt::Message> inbound_;
  logging::RateLimited rejection_log_;
  const int64_t started_ms_;

  // Owned by the processing thread.
  registry::DerRegistry registry_;
  std::map<std::string, SubstationView> substations_;
  std::unordered_map<std::string, SentControl> sent_controls_;   // by command_id
  std::unordered_map<std::string, std::string> controlled_der_;  // der_id -> command_id
  int64_t last_run_id_;
  std::chrono::steady_clock::time_point next_status_{};
  std::chrono::steady_clock::time_point next_periodic_{};

  // Read by stats() from any thread.
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> stale_ignored_{0};
  std::atomic<uint64_t> dispatch_runs_{0};
  std::atomic<uint64_t> controls_sent_{0};
  std::atomic<uint64_t> responses_{0};
  std::atomic<uint32_t> ders_known_{0};
  std::atomic<uint32_t> ders_online_{0};
  std::atomic<bool> ready_{false};
  mutable std::mutex reasons_mutex_;
  std::map<std::string, uint64_t> rejected_by_reason_;  // GUARDED_BY(reasons_mutex_)
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_H_
