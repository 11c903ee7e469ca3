// The one place periodic work is timed. Modules add jobs at wiring time; the
// core calls Tick() from the processing loop with the monotonic time.
//   - A foreground job runs on the processing thread (it may touch its
//     module's state and publish).
//   - A background job's work runs on the background executor (long SQL:
//     rollups, reports, backups) and returns a completion, which runs on
//     the processing thread at a later Tick (to publish what it found). At
//     most one run of a background job is in flight at a time.
// A job that fell behind runs once, not once per missed period.
//
// Tick, Every, EveryInBackground: processing thread only. The executor may
// run work on any thread; completions are handed back under a mutex.
#ifndef DERMS_CLOUD_AGGREGATOR_CORE_SCHEDULER_H_
#define DERMS_CLOUD_AGGREGATOR_CORE_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace derms::aggregator {

// Where background work runs. The service's is a thread of its own; a test's
// may run work inline.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void Post(std::function<void()> work) = 0;
};

class Scheduler {
 public:
  // `now_ms`: the domain clock, passed to every job.
  using Job = std::function<void(int64_t now_ms)>;
  // What background work hands back to the processing thread (may be empty).
  using Completion = std::function<void()>;
  using Work = std::function<Completion(int64_t now_ms)>;

  // `background` may be null when no background job is added.
  explicit Scheduler(Executor* background = nullptr) : background_(background) {}

  // Runs `job` every `period_ms` (0: every tick, from the first), the first
  // time `period_ms` after the first Tick (or at once with `at_start`).
  void Every(std::string name, int64_t period_ms, Job job, bool at_start = false);
  void EveryInBackground(std::string name, int64_t period_ms, Work work);
  // Runs `work` once on the background executor (a read that must not hold
  // up the processing thread); its completion runs at a later Tick. Without
  // an executor, the work runs inline and its completion at the next Tick.
  void Once(Work work, int64_t now_ms);

  // Runs what is due at monotonic time `mono_ms`, and the completions of
  // background work that finished since the last Tick.
  void Tick(int64_t mono_ms, int64_t now_ms);

  size_t jobs() const { return jobs_.size(); }
  // Background runs posted and not yet completed.
  size_t in_flight() const;

 private:
  struct Entry {
    std::string name;
    int64_t period_ms = 0;
    Job job;
    Work work;             // background jobs
    int64_t next_ms = -1;  // -1: not yet started
    bool at_start = false;
    std::shared_ptr<bool> busy;  // a background run is in flight
  };
  void Start(Entry& e, int64_t now_ms);

  Executor* const background_;
  std::vector<Entry> jobs_;
  mutable std::mutex done_mutex_;
  std::vector<std::pair<std::shared_ptr<bool>, Completion>> done_;  // GUARDED_BY(done_mutex_)
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_CORE_SCHEDULER_H_
