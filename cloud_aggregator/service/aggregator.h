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
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cloud_aggregator/dispatch/der_capability.h"
#include "cloud_aggregator/registry/der_registry.h"
#include "cloud_aggregator/scheduling/price_book.h"
#include "cloud_aggregator/service/aggregator_options.h"
#include "cloud_aggregator/service/maintenance.h"
#include "cloud_aggregator/storage/history_jobs.h"
#include "cloud_aggregator/storage/journal.h"
#include "cloud_aggregator/storage/store.h"
#include "cloud_aggregator/vder/vder_tree.h"
#include "cloud_aggregator/workflow/dispatch_run.h"
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
  uint64_t stored = 0;            // records committed to SQLite (or found already there)
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
  // Thread-safe.
  Stats stats() const;
  // Waits until every record accepted so far is committed (tests, backups);
  // the store's error if it is failing.
  [[nodiscard]] Status FlushStore() { return store_->Flush(); }
  const std::string& db_path() const { return store_->path(); }

 private:
  // What operators see of one virtual DER (vder/{id}/status), and when it
  // was last published.
  struct VderView {
    derms::v1::VirtualDerStatus status;  // the last run and grid; aggregates filled on publish
    bool changed = true;                 // something beyond the aggregates changed
    uint64_t published_version = 0;
    std::chrono::steady_clock::time_point published_at{};
    vder::Aggregate published;
  };
  // A dispatch run waiting for answers.
  struct ActiveRun {
    std::unique_ptr<workflow::DispatchRun> run;
    storage::DispatchRunRecord record;  // stages 1-5 filled at the start
    int root = -1;
    int64_t start_ms = 0;  // intervals' start (0: on receipt)
    int64_t duration_s = 0;
    std::chrono::steady_clock::time_point deadline{};
    std::unordered_map<std::string, size_t> member_index;  // der_id -> run member
    std::vector<bool> defaulted;  // silent members already told RETURN_TO_DEFAULT
    // A utility's dispatch request: answered when the run ends.
    bool answer = false;
    derms::v1::DispatchResult result;
    std::string response_topic;
    std::string correlation_data;
  };
  // The control a DER follows for us.
  // (From its APPLIED or CLAMPED answer: a refused control changes nothing.)
  struct InForce {
    std::string command_id;
    int64_t run_id = 0;
    double kw = 0;         // the setpoint, or what it was clamped to
    int64_t ends_ms = 0;   // device time
    bool applied = false;  // APPLIED as asked: a later run may keep it
  };

  Aggregator(const AggregatorOptions& options, const Clock& clock,
             std::unique_ptr<storage::Store> store, std::unique_ptr<mqtt::Client> client,
             vder::VderTree tree);

  void Handle(const mqtt::Message& m, int64_t now_ms);
  void HandleBirth(const std::string& der_id, const mqtt::Message& m, int64_t now_ms);
  void HandleStatus(const std::string& der_id, const mqtt::Message& m, int64_t now_ms);
  void HandleTelemetry(const std::string& der_id, const mqtt::Message& m, int64_t now_ms);
  void HandleResponse(const std::string& der_id, const mqtt::Message& m, int64_t now_ms);
  void HandleGridStatus(const std::string& substation_id, const mqtt::Message& m, int64_t now_ms);
  void HandleDispatchRequest(const std::string& vder_id, const mqtt::Message& m, int64_t now_ms);

  // Virtual DERs (aggregator.cc).
  void PlaceDer(const registry::DerState& der);
  // Stores which DERs each virtual DER holds, for the history jobs' rollups.
  void StoreMembership();
  // Lets the journal drop what the store will have committed.
  void ReleaseJournal();
  void RefreshContribution(const registry::DerState& der);
  void PublishVderStatuses(bool force_all);
  void Reload(int64_t now_ms);
  VderView& View(int v);

  // The dispatch workflow (aggregator_dispatch.cc).
  // Stages 2-6 for the virtual DER `root`: `requested_kw` of output from its
  // active members (only those at `substation_id` when given).
  void StartRun(int root, double requested_kw, storage::DispatchRunRecord record,
                const std::string& substation_id, int64_t start_ms, int64_t duration_s,
                int64_t now_ms, ActiveRun pending);
  std::vector<workflow::ActiveMember> ActiveMembers(int root, const std::string& substation_id,
                                                    int64_t duration_s, int64_t now_ms) const;
  void SendRound(ActiveRun& run, const std::vector<size_t>& members, int64_t now_ms);
  void Advance(int64_t run_id, int64_t now_ms);
  void FinishRun(int64_t run_id, const std::string& outcome, int64_t now_ms);
  void ReleaseUnneeded(const ActiveRun& run, int64_t now_ms);
  void CheckRunDeadlines(int64_t now_ms);
  void AnswerDispatch(const derms::v1::DispatchResult& result, const std::string& response_topic,
                      const std::string& correlation_data);

  // Charging schedules (aggregator_schedule.cc).
  struct ScheduleEntry {
    derms::v1::ScheduleRequest request;
    derms::v1::ScheduleResult result;
    int64_t received_ms = 0;
  };
  void LoadPrices(std::vector<derms::v1::PriceForecast> stored);
  void HandlePriceForecast(const std::string& kind, const std::string& node, const mqtt::Message& m,
                           int64_t now_ms);
  void HandleScheduleRequest(const mqtt::Message& m, int64_t now_ms);
  // Solves, and sends the schedule to the DER when asked; fills entry.result.
  void SolveSchedule(ScheduleEntry& entry, int64_t now_ms);
  void OnScheduleResponse(const derms::v1::ControlResponse& r, int64_t now_ms);
  void PublishSchedule(const ScheduleEntry& entry, const std::string& response_topic,
                       const std::string& correlation_data, int64_t now_ms,
                       bool on_result_topic = true);

  void Periodic(int64_t now_ms);
  void ForgetEndedControls(int64_t now_ms);
  void PublishStatus(bool online, int64_t now_ms);
  std::string StatusJson(bool online, int64_t now_ms) const;
  void NoteOnlineChange(const registry::DerState& der, bool online, const std::string& cause,
                        int64_t now_ms);
  void Reject(const Status& s, const std::string& topic);
  void Accept() { ++accepted_; }
  void Publish(const std::string& topic, const std::string& payload, bool retained = false);
  // Answers a request on its MQTT 5 response topic, if it gave one.
  void Reply(const std::string& response_topic, const std::string& correlation_data,
             const std::string& payload);
  void SendCommand(const std::string& der_id, derms::v1::NodeCommandType type,
                   const std::string& reason, int64_t now_ms);

  const AggregatorOptions options_;
  const Clock clock_;
  std::unique_ptr<storage::Store> store_;
  // After store_: stopped before the store closes.
  std::unique_ptr<storage::HistoryJobs> history_;
  std::unique_ptr<Maintenance> maintenance_;  // reports and backups
  std::unique_ptr<mqtt::Client> client_;
  mqtt::Session session_;
  // A message from Paho's thread and its place in the journal (0: none).
  struct Inbound {
    mqtt::Message message;
    uint64_t journal_seq = 0;
  };
  BlockingQueue<Inbound> inbound_;
  // Telemetry journal (null when disabled); set before the first connect.
  std::unique_ptr<storage::Journal> journal_;
  uint64_t journal_handled_ = 0;   // highest journal seq handed to the store
  uint64_t journal_released_ = 0;  // highest seq whose release was queued
  logging::RateLimited rejection_log_;
  const int64_t started_ms_;

  // Owned by the processing thread.
  registry::DerRegistry registry_;
  std::unique_ptr<vder::VderFleet> fleet_;
  bool membership_changed_ = true;  // since StoreMembership
  dispatch::CostTable costs_;
  std::vector<VderView> views_;        // by virtual DER index
  std::map<int64_t, ActiveRun> runs_;  // by run id
  // Every dispatch control sent, until it has ended: late answers still
  // say what a DER follows, after its run has finished.
  struct SentControl {
    std::string der_id;
    int64_t run_id = 0;
    size_t member = 0;  // in its run
    double kw = 0;
    int64_t begins_ms = 0;
    int64_t ends_ms = 0;
  };
  std::unordered_map<std::string, SentControl> sent_;         // by command_id
  std::unordered_map<std::string, std::string> latest_sent_;  // der_id -> command_id
  std::unordered_map<std::string, InForce> in_force_;         // by der_id
  scheduling::PriceBook price_book_;
  std::map<std::string, ScheduleEntry> schedules_;  // by request_id
  std::deque<std::string> schedule_order_;
  // DERs following an owner's charging schedule, until its last interval
  // ends: dispatch leaves them out rather than be refused by them.
  std::unordered_map<std::string, int64_t> scheduled_until_ms_;     // request_ids, oldest first
  std::unordered_map<std::string, std::string> schedule_commands_;  // command_id -> request_id
  uint64_t schedules_made_ = 0;
  int64_t last_run_id_;
  std::chrono::steady_clock::time_point next_status_{};
  std::chrono::steady_clock::time_point next_periodic_{};
  std::chrono::steady_clock::time_point next_sweep_{};

  // Read by stats() from any thread.
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> stale_ignored_{0};
  std::atomic<uint64_t> dispatch_runs_{0};
  std::atomic<uint64_t> controls_sent_{0};
  std::atomic<uint64_t> responses_{0};
  std::atomic<uint64_t> reloads_{0};
  std::atomic<uint64_t> reloads_rejected_{0};
  std::atomic<uint64_t> vder_conflicts_{0};
  std::atomic<uint32_t> ders_known_{0};
  std::atomic<uint32_t> ders_online_{0};
  std::atomic<uint32_t> vders_{0};
  std::atomic<bool> ready_{false};
  mutable std::mutex reasons_mutex_;
  std::map<std::string, uint64_t> rejected_by_reason_;  // GUARDED_BY(reasons_mutex_)
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_SERVICE_AGGREGATOR_H_
