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
    not_empty_.notify_one();
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
    not_full_.notify_one();
    return item;
  }

  // Moves up to `max` items into `out` without waiting; returns how many.
  size_t DrainTo(std::vector<T>* out, size_t max) {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    while (n < max && !items_.empty()) {
      out->push_back(std::move(items_.front()));
      items_.pop_front();
      ++n;
    }
    if (n > 0) not_full_.notify_all();
    return n;
  }

  // Wakes every waiter; later pushes fail, pops drain what is left.
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
  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<T> items_;  // GUARDED_BY(mutex_)
  bool closed_ = false;  // GUARDED_BY(mutex_)
};

}  // namespace derms

#endif  // DERMS_COMMON_BLOCKING_QUEUE_H_
