#include "cloud_aggregator/service/adapters.h"

namespace derms::aggregator {

void MqttOutbox::Publish(const std::string& topic, const std::string& payload, bool retained) {
  Status s = client_.Publish(mqtt::Message{topic, payload, 1, retained, {}, {}});
  if (!s.ok()) intake_.Warn("publish_failed", s.message());
}

void MqttOutbox::Reply(const ReplyTo& to, const std::string& payload) {
  if (to.topic.empty()) return;
  Status s = client_.Publish(mqtt::Message{to.topic, payload, 1, false, {}, to.correlation_data});
  if (!s.ok()) intake_.Warn("publish_failed", s.message());
}

void RegisterStorageMetrics(Metrics& metrics, const storage::Store& store,
                            const storage::Journal* journal) {
  Gauge& stored = metrics.AddGauge("rows_stored", "records committed (or found already stored)");
  Gauge& telemetry = metrics.AddGauge("telemetry_stored",
                                      "telemetry samples committed (or found already stored)");
  Gauge& expired = metrics.AddGauge("rows_expired", "rows removed by retention");
  Gauge& errors = metrics.AddGauge("storage_errors", "failed writes and commits");
  Gauge& journaled = metrics.AddGauge("journal_appended", "telemetry journaled on arrival");
  Gauge& journal_errors =
      metrics.AddGauge("journal_write_errors", "journal appends that failed (kept in memory)");
  Gauge& failing = metrics.AddGauge("storage_failing", "1 while writes fail (retried)");
  Info& last_error = metrics.AddInfo("storage_last_error", "why the store fails");
  Gauge& failing_since = metrics.AddGauge("storage_failing_since_ms", "when writes began failing");
  Gauge& retries = metrics.AddGauge("storage_retries", "failed batches retried");
  Gauge& held = metrics.AddGauge("storage_records_held", "records waiting in memory");
  Gauge& accepted = metrics.AddGauge("storage_records_accepted", "records handed to the store");
  Gauge& committed = metrics.AddGauge("storage_records_committed", "records committed");
  Gauge& paused = metrics.AddGauge("ingest_paused", "1 while ingest waits for the store");
  metrics.AddCollector([&store, journal, &stored, &telemetry, &expired, &errors, &journaled, &journal_errors,
                        &failing, &last_error, &failing_since, &retries, &held, &accepted,
                        &committed, &paused] {
    const auto& c = store.counters();
    stored.Set(static_cast<double>(c.committed + c.duplicates));
    telemetry.Set(static_cast<double>(c.telemetry.load()));
    expired.Set(static_cast<double>(c.expired.load()));
    errors.Set(static_cast<double>(c.errors.load()));
    journaled.Set(journal ? static_cast<double>(journal->appended()) : 0);
    journal_errors.Set(journal ? static_cast<double>(journal->write_errors()) : 0);
    storage::StoreHealth health = store.health();
    failing.Set(health.failing ? 1 : 0);
    last_error.Set(health.last_error);
    failing_since.Set(static_cast<double>(health.failing_since_ms));
    retries.Set(static_cast<double>(health.retries));
    held.Set(static_cast<double>(health.held));
    accepted.Set(static_cast<double>(health.accepted));
    committed.Set(static_cast<double>(health.committed));
    paused.Set(store.ShouldPause() ? 1 : 0);
  });
}

ThreadExecutor::ThreadExecutor() : thread_([this] { Loop(); }) {}

ThreadExecutor::~ThreadExecutor() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    work_.clear();
  }
  wake_.notify_all();
  thread_.join();
}

void ThreadExecutor::Post(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    work_.push_back(std::move(work));
  }
  wake_.notify_one();
}

void ThreadExecutor::Loop() {
  while (true) {
    std::function<void()> work;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !work_.empty(); });
      if (stopping_) return;
      work = std::move(work_.front());
      work_.pop_front();
    }
    work();
  }
}

}  // namespace derms::aggregator
