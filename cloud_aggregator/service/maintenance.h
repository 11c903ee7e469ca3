// Scheduled work that must not hold up message processing: the named
// queries ([[report]]) and the online backups ([backup]). One thread of its
// own runs whatever is due, one job at a time; results are kept in the
// `events` table and announced on events/report and events/backup.
#ifndef DERMS_CLOUD_AGGREGATOR_SERVICE_MAINTENANCE_H_
#define DERMS_CLOUD_AGGREGATOR_SERVICE_MAINTENANCE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cloud_aggregator/service/aggregator_options.h"
#include "cloud_aggregator/storage/store.h"

namespace derms::aggregator {

class Maintenance {
 public:
  // `publish(topic, payload)` must be thread-safe (it is called from the
  // maintenance thread). `now_ms` gives the aggregator's clock.
  using Publisher = std::function<void(const std::string& topic, const std::string& payload)>;
  Maintenance(const AggregatorOptions& options, storage::Store* store,
              std::function<int64_t()> now_ms, Publisher publish);
  // Stops the thread; a job in progress finishes first.
  ~Maintenance();

  // Runs one report now, on the calling thread; returns the JSON announced.
  std::string RunReport(const AggregatorOptions::Report& report);
  // Runs one backup now, on the calling thread; returns the JSON announced.
  std::string RunBackup();

 private:
  struct Job {
    std::function<void()> run;
    std::chrono::steady_clock::duration every;
    std::chrono::steady_clock::time_point next;
  };
  void Loop();

  const AggregatorOptions options_;
  storage::Store* const store_;
  const std::function<int64_t()> now_ms_;
  const Publisher publish_;
  std::vector<Job> jobs_;  // used by the thread only
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // GUARDED_BY(mutex_)
  std::thread thread_;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_SERVICE_MAINTENANCE_H_
