#include "cloud_aggregator/service/adapters.h"

namespace derms::aggregator {

void MqttOutbox::Publish(const std::string& topic, const std::string& payload, bool retained) {
  Status s = client_.Publish(mqtt::Message{topic, payload, 1, retained, {}, {}});
  if (!s.ok()) intake_.Warn("publish_failed", s.message());
}

void MqttOutbox::Reply(const std::string& response_topic, const std::string& correlation_data,
                       const std::string& payload) {
  if (response_topic.empty()) return;
  Status s =
      client_.Publish(mqtt::Message{response_topic, payload, 1, false, {}, correlation_data});
  if (!s.ok()) intake_.Warn("publish_failed", s.message());
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
