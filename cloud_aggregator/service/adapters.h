// The ports of cloud_aggregator/core wired to the real world: MQTT for the
// outbox, the SQLite store for the record sink, the system clocks for time,
// a thread for background work.
#ifndef DERMS_CLOUD_AGGREGATOR_SERVICE_ADAPTERS_H_
#define DERMS_CLOUD_AGGREGATOR_SERVICE_ADAPTERS_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/ports.h"
#include "cloud_aggregator/core/scheduler.h"
#include "cloud_aggregator/storage/journal.h"
#include "cloud_aggregator/storage/store.h"
#include "common/clock.h"
#include "common/mqtt/mqtt_client.h"

namespace derms::aggregator {

// QoS 1 through the Paho wrapper; a failed publish is logged (rate-limited).
class MqttOutbox : public Outbox {
 public:
  MqttOutbox(mqtt::Client& client, Intake& intake) : client_(client), intake_(intake) {}
  void Publish(const std::string& topic, const std::string& payload, bool retained) override;
  void Reply(const ReplyTo& to, const std::string& payload) override;
  bool online() const override { return online_; }
  // The session's state, set by the processing loop.
  void set_online(bool online) { online_ = online; }

 private:
  mqtt::Client& client_;
  bool online_ = false;
  Intake& intake_;
};

class StoreSink : public RecordSink {
 public:
  explicit StoreSink(storage::Store& store) : store_(store) {}
  void Add(storage::Record record) override { store_.Add(std::move(record)); }

 private:
  storage::Store& store_;
};

// The store's and the journal's figures (atomics and health owned by their
// threads) as gauges, refreshed at each snapshot. `journal` may be null.
void RegisterStorageMetrics(Metrics& metrics, const storage::Store& store,
                            const storage::Journal* journal);

// The domain clock (possibly simulated) and std::chrono::steady_clock.
class SystemTime : public TimeSource {
 public:
  explicit SystemTime(const Clock& clock) : clock_(clock) {}
  int64_t NowMs() const override { return clock_.NowMs(); }
  int64_t MonotonicMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

 private:
  const Clock clock_;
};

// One worker thread, work in order. Destruction waits for the work in
// progress and drops what was not started.
class ThreadExecutor : public Executor {
 public:
  ThreadExecutor();
  ~ThreadExecutor() override;
  void Post(std::function<void()> work) override;

 private:
  void Loop();
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> work_;  // GUARDED_BY(mutex_)
  bool stopping_ = false;                   // GUARDED_BY(mutex_)
  std::thread thread_;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_SERVICE_ADAPTERS_H_
