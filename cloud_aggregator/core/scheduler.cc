#include "cloud_aggregator/core/scheduler.h"

#include <algorithm>
#include <utility>

namespace derms::aggregator {

void Scheduler::Every(std::string name, int64_t period_ms, Job job, bool at_start) {
  Entry e;
  e.name = std::move(name);
  e.period_ms = std::max<int64_t>(0, period_ms);
  e.job = std::move(job);
  e.at_start = at_start;
  jobs_.push_back(std::move(e));
}

void Scheduler::EveryInBackground(std::string name, int64_t period_ms, Work work) {
  Entry e;
  e.name = std::move(name);
  e.period_ms = std::max<int64_t>(0, period_ms);
  e.work = std::move(work);
  e.busy = std::make_shared<bool>(false);
  jobs_.push_back(std::move(e));
}

size_t Scheduler::in_flight() const {
  size_t n = 0;
  for (const auto& e : jobs_) n += e.busy && *e.busy ? 1 : 0;
  return n;
}

void Scheduler::Start(Entry& e, int64_t now_ms) {
  if (e.job) {
    e.job(now_ms);
    return;
  }
  if (*e.busy || background_ == nullptr) return;
  *e.busy = true;
  // The flag is shared with the completion, so a run that finishes after the
  // entry moved still clears the right one.
  std::shared_ptr<bool> busy = e.busy;
  background_->Post([this, work = e.work, busy, now_ms] {
    Completion done = work(now_ms);
    std::lock_guard<std::mutex> lock(done_mutex_);
    done_.emplace_back(busy, std::move(done));
  });
}

void Scheduler::Once(Work work, int64_t now_ms) {
  auto busy = std::make_shared<bool>(true);
  auto run = [this, work = std::move(work), busy, now_ms] {
    Completion done = work(now_ms);
    std::lock_guard<std::mutex> lock(done_mutex_);
    done_.emplace_back(busy, std::move(done));
  };
  if (background_ == nullptr) {
    run();
  } else {
    background_->Post(std::move(run));
  }
}

void Scheduler::Tick(int64_t mono_ms, int64_t now_ms) {
  std::vector<std::pair<std::shared_ptr<bool>, Completion>> done;
  {
    std::lock_guard<std::mutex> lock(done_mutex_);
    done.swap(done_);
  }
  for (auto& [busy, completion] : done) {
    *busy = false;
    if (completion) completion();
  }
  for (size_t i = 0; i < jobs_.size(); ++i) {
    Entry& e = jobs_[i];
    if (e.next_ms < 0) {
      e.next_ms = mono_ms + e.period_ms;
      if (!e.at_start && e.period_ms > 0) continue;
    } else if (mono_ms < e.next_ms) {
      continue;
    } else {
      // Behind by more than a period: run once, and the next period starts now.
      e.next_ms += e.period_ms;
      if (e.next_ms <= mono_ms) e.next_ms = mono_ms + e.period_ms;
    }
    Start(jobs_[i], now_ms);
  }
}

}  // namespace derms::aggregator
