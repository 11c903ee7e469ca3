// Fakes of the aggregator core's ports for unit tests of modules: an outbox
// that keeps what was published, a sink that keeps the records, a clock the
// test steps. No broker, no disk.
#ifndef DERMS_TESTS_SUPPORT_MODULE_FAKES_H_
#define DERMS_TESTS_SUPPORT_MODULE_FAKES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cloud_aggregator/core/ports.h"
#include "cloud_aggregator/core/router.h"
#include "common/codec.h"
#include "common/topics.h"

namespace derms::testing {

struct Published {
  std::string topic;
  std::string payload;
  bool retained = false;
  std::string correlation_data;  // replies only
};

class FakeOutbox : public aggregator::Outbox {
 public:
  void Publish(const std::string& topic, const std::string& payload, bool retained) override {
    published.push_back({topic, payload, retained, ""});
  }
  void Reply(const aggregator::ReplyTo& to, const std::string& payload) override {
    if (!to.topic.empty()) replies.push_back({to.topic, payload, false, to.correlation_data});
  }
  bool online() const override { return is_online; }

  // Messages published on exactly `topic`, oldest first.
  std::vector<Published> On(const std::string& topic) const {
    std::vector<Published> out;
    for (const auto& p : published) {
      if (p.topic == topic) out.push_back(p);
    }
    return out;
  }
  template <typename T>
  T Decode(const Published& p) const {
    T m;
    if (codec::LooksLikeJson(p.payload)) {
      (void)codec::ParseJson(p.payload, "", &m);
    } else {
      (void)codec::ParseBinary(p.payload, "", &m);
    }
    return m;
  }

  std::vector<Published> published;
  std::vector<Published> replies;
  bool is_online = true;
};

class FakeSink : public aggregator::RecordSink {
 public:
  void Add(storage::Record record) override { records.push_back(std::move(record)); }
  template <typename T>
  std::vector<T> All() const {
    std::vector<T> out;
    for (const auto& r : records) {
      if (const T* t = std::get_if<T>(&r)) out.push_back(*t);
    }
    return out;
  }
  std::vector<storage::Record> records;
};

// Both clocks move only when the test says so.
class SteppedTime : public aggregator::TimeSource {
 public:
  explicit SteppedTime(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_; }
  int64_t MonotonicMs() const override { return mono_ms_; }
  void Advance(int64_t ms) {
    now_ms_ += ms;
    mono_ms_ += ms;
  }

 private:
  int64_t now_ms_;
  int64_t mono_ms_ = 1000000;
};

// A message as the broker would hand it to the router.
inline aggregator::Inbound Message(const std::string& topic, const std::string& payload,
                                   const std::string& response_topic = "",
                                   const std::string& correlation_data = "") {
  return aggregator::Inbound{topic, payload, {response_topic, correlation_data}, {}};
}

}  // namespace derms::testing

#endif  // DERMS_TESTS_SUPPORT_MODULE_FAKES_H_
