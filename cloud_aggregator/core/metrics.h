// One registry of the aggregator's figures. Modules register their counters
// and gauges once, by name, and bump them on the processing thread; the core
// takes an immutable MetricsSnapshot of all of them, which every renderer
// (aggregator/status JSON today, a Prometheus page next) and every reader on
// another thread reads. There is no second copy of a counter anywhere.
//
// Not thread-safe: registration, updates and Snapshot() happen on the
// processing thread. Figures owned by other threads (the store's writer, the
// journal) come in through collectors, which Snapshot() calls.
#ifndef DERMS_CLOUD_AGGREGATOR_CORE_METRICS_H_
#define DERMS_CLOUD_AGGREGATOR_CORE_METRICS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace derms::aggregator {

// A value that only goes up.
class Counter {
 public:
  void Add(uint64_t n = 1) { value_ += n; }
  uint64_t value() const { return value_; }

 private:
  uint64_t value_ = 0;
};

// A value that goes up and down (a count of things now).
class Gauge {
 public:
  void Set(double v) { value_ = v; }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

// A piece of text that describes the state now (the store's last error).
class Info {
 public:
  void Set(std::string text) { text_ = std::move(text); }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// Counters by one label's value (messages rejected, by reason).
class LabeledCounter {
 public:
  void Add(const std::string& label, uint64_t n = 1) { values_[label] += n; }
  const std::map<std::string, uint64_t>& values() const { return values_; }

 private:
  std::map<std::string, uint64_t> values_;
};

// What a family is, fixed when it is registered and shared by every
// snapshot (a snapshot copies values, not names and help texts).
struct MetricFamilyInfo {
  enum class Type { kCounter, kGauge, kInfo };
  std::string name;
  std::string help;
  std::string label;  // for labelled families: the label's name
  Type type = Type::kCounter;
};

struct MetricsSnapshot {
  struct Family {
    std::shared_ptr<const MetricFamilyInfo> about;
    double value = 0;                           // plain families
    std::map<std::string, double> by_label;     // labelled families
    const std::string& name() const { return about->name; }
  };
  std::vector<Family> families;             // counters and gauges, in registration order
  std::map<std::string, std::string> info;  // Info values by name
  int64_t taken_ms = 0;                     // the domain clock when taken

  // 0 when the family or label value is absent. No allocation: readers on
  // other threads poll these.
  double Value(std::string_view name) const;
  double Value(std::string_view name, std::string_view label) const;
  // "" when absent.
  std::string Text(std::string_view name) const;
  const Family* Find(std::string_view name) const;
};

class Metrics {
 public:
  // Each returns a reference that stays valid for the registry's life.
  // REQUIRES: each name registered once.
  Counter& AddCounter(std::string name, std::string help);
  Gauge& AddGauge(std::string name, std::string help);
  LabeledCounter& AddLabeledCounter(std::string name, std::string label, std::string help);
  Info& AddInfo(std::string name, std::string help);
  // Called by Snapshot() before it reads: refreshes gauges from state owned
  // elsewhere (another thread's atomics, a module's maps).
  void AddCollector(std::function<void()> collect);

  MetricsSnapshot Snapshot(int64_t now_ms) const;

 private:
  struct Entry {
    std::shared_ptr<const MetricFamilyInfo> about;
    const Counter* counter = nullptr;
    const Gauge* gauge = nullptr;
    const LabeledCounter* labeled = nullptr;
    const Info* info = nullptr;
  };
  Entry& Register(std::string name, std::string help, std::string label,
                  MetricFamilyInfo::Type type);
  std::deque<Counter> counters_;  // deques: references stay valid as they grow
  std::deque<Gauge> gauges_;
  std::deque<LabeledCounter> labeled_;
  std::deque<Info> infos_;
  std::vector<Entry> entries_;
  std::vector<std::function<void()>> collectors_;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_CORE_METRICS_H_
