// A multi-producer, multi-consumer FIFO with an optional bound. Used to hand
// messages off Paho's callback thread to our own loops.
#ifndef DERMS_COMMON_BLOCKING_QUEUE_H_
#define DERMS_COMMON_BLOCKING_QUEUE_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace derms {

template <typename T>
class BlockingQueue {
 public:
  // capacity 0 means unbounded.
  explicit BlockingQueue(size_t capacity = 0) : capacity_(capacity) {}

  // Blocks while full. Returns false when the queue is closed.
  bool Push(T item) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || capacity_ == 0 || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    // Only a transition from empty can have a consumer asleep: waking on
    // every push costs a futex call per message on the hot path.
    if (items_.size() == 1) not_empty_.notify_one();
    return true;
  }

  // Waits up to `timeout` for an item; nullopt on timeout or when closed and empty.
  template <typename Rep, typename Period>
  std::optional<T> PopFor(std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); })) {
      return std::nullopt;
    }
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    if (capacity_ != 0 && items_.size() + 1 == capacity_) not_full_.notify_all();
    return item;
  }

  // Moves up to `max` items into `out` without waiting; returns how many.
  size_t DrainTo(std::vector<T>* out, size_t max) {
    std::lock_guard<std::mutex> lock(mutex_);
    return DrainLocked(out, max);
  }

  // Waits up to `timeout` for at least one item, then moves up to `max`
  // items into `out` under one lock; returns how many.
  template <typename Rep, typename Period>
  size_t WaitAndDrainTo(std::vector<T>* out, size_t max,
                        std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); });
    return DrainLocked(out, max);
  }

  // Wakes every waiter; later pushes fail, pops drain what is left.
  // (Single-consumer queues are what this is used for: with several
  // consumers one may sleep while another drains.)
  void Close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

  size_t Size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size();
  }

 private:
  size_t DrainLocked(std::vector<T>* out, size_t max) {
    size_t n = 0;
    bool was_full = capacity_ != 0 && items_.size() >= capacity_;
    while (n < max && !items_.empty()) {
      out->push_back(std::move(items_.front()));
      items_.pop_front();
      ++n;
    }
    if (n > 0 && was_full) not_full_.notify_all();
    return n;
  }

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<T> items_;  // GUARDED_BY(mutex_)
  bool closed_ = false;  // GUARDED_BY(mutex_)
};

}  // namespace derms

#endif  // DERMS_COMMON_BLOCKING_QUEUE_H_
