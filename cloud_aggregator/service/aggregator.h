// The cloud aggregator: a small core that wires feature modules to the
// world. Data flows one way:
//   Paho's callback thread -> (journal) -> inbound queue -> processing
//   thread: Router -> module.OnMessage -> Outbox (MQTT) / RecordSink
//   (store writer thread -> SQLite)
// and the Scheduler runs every periodic job, on the processing thread or,
// for long SQL, on the background executor. Nothing slow runs on Paho's
// thread; nothing on the processing thread waits for the disk. The modules
// (cloud_aggregator/modules/) own the features; this class owns the loop,
// the connection, the store and the journal, and the order things start and
// stop in.
#ifndef DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_H_
#define DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/router.h"
#include "cloud_aggregator/core/scheduler.h"
#include "cloud_aggregator/modules/charging/charging_module.h"
#include "cloud_aggregator/modules/controls/controls_module.h"
#include "cloud_aggregator/modules/curtailment/curtailment_module.h"
#include "cloud_aggregator/modules/dispatch/dispatch_module.h"
#include "cloud_aggregator/modules/fleet/fleet_module.h"
#include "cloud_aggregator/modules/history/history_module.h"
#include "cloud_aggregator/modules/prometheus/prometheus_module.h"
#include "cloud_aggregator/modules/status/status_module.h"
#include "cloud_aggregator/service/adapters.h"
#include "cloud_aggregator/service/aggregator_options.h"
#include "cloud_aggregator/storage/journal.h"
#include "cloud_aggregator/storage/store.h"
#include "common/blocking_queue.h"
#include "common/clock.h"
#include "common/mqtt/mqtt_client.h"
#include "common/mqtt/session.h"

namespace derms::aggregator {

// What the aggregator has done, read from the metrics snapshot (tests,
// benchmarks, the exit line).
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
  uint64_t stored = 0;            // records committed to SQLite (or found already there)
  uint64_t telemetry_stored = 0;  // of which telemetry samples
  uint64_t journaled = 0;         // telemetry messages journaled on arrival (journal on)
  uint64_t reloads = 0;           // configuration reloads applied
  uint64_t reloads_rejected = 0;  // reloads refused (the running configuration stayed)
  uint64_t vder_conflicts = 0;    // DERs two virtual DERs claimed (the first kept them)
  uint32_t vders = 0;             // virtual DERs, implicit ones included
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
  // and commits what is queued. Blocks the calling thread. When `reload` is
  // given, setting it re-reads the virtual DERs and costs from the
  // configuration file (SIGHUP); a bad file leaves the running ones in force.
  void Run(const std::atomic<bool>& stop, std::atomic<bool>* reload = nullptr);
  // Thread-safe: the snapshot the processing thread last published.
  Stats stats() const;
  std::shared_ptr<const MetricsSnapshot> snapshot() const;
  // Waits until every record accepted so far is committed (tests, backups);
  // the store's error if it is failing.
  [[nodiscard]] Status FlushStore() { return store_->Flush(); }
  const std::string& db_path() const { return store_->path(); }

 private:
  // A message from Paho's thread and its place in the journal (0: none).
  struct Received {
    mqtt::Message message;
    uint64_t journal_seq = 0;
  };

  Aggregator(const AggregatorOptions& options, const Clock& clock,
             std::unique_ptr<storage::Store> store, std::unique_ptr<storage::Journal> journal,
             std::unique_ptr<mqtt::Client> client);
  // Builds the modules and routes; Create's second half.
  Status Wire(vder::VderTree tree);
  void Handle(Received& in, int64_t now_ms);
  // Lets the journal drop what the store will have committed.
  void ReleaseJournal();
  void PublishSnapshot(int64_t now_ms);

  const AggregatorOptions options_;
  SystemTime time_;
  const int64_t started_ms_;
  // Declared first, destroyed last: everything below may write to them.
  std::unique_ptr<storage::Journal> journal_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<mqtt::Client> client_;
  BlockingQueue<Received> inbound_;
  uint64_t journal_handled_ = 0;   // highest journal seq handed to the store
  uint64_t journal_released_ = 0;  // highest seq whose release was queued

  Metrics metrics_;
  Intake intake_;
  MqttOutbox outbox_;
  StoreSink sink_;
  // Stopped first (in the destructor), so no background work outlives what
  // it uses.
  std::unique_ptr<ThreadExecutor> executor_;
  Scheduler scheduler_;
  Router router_;
  std::unique_ptr<ControlsModule> controls_;
  std::unique_ptr<FleetModule> fleet_;
  std::unique_ptr<DispatchModule> dispatch_;
  std::unique_ptr<ChargingModule> charging_;
  std::unique_ptr<CurtailmentModule> curtailment_;
  std::unique_ptr<HistoryModule> history_;
  std::unique_ptr<StatusModule> status_;
  std::unique_ptr<PrometheusModule> prometheus_;
  std::vector<Module*> modules_;  // the above, in routing order
  std::unique_ptr<mqtt::Session> session_;

  std::atomic<bool> ready_{false};
  mutable std::mutex snapshot_mutex_;
  std::shared_ptr<const MetricsSnapshot> snapshot_;  // GUARDED_BY(snapshot_mutex_)
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_H_
