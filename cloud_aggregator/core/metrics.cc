#include "cloud_aggregator/core/metrics.h"

#include <utility>

namespace derms::aggregator {

const MetricsSnapshot::Family* MetricsSnapshot::Find(std::string_view name) const {
  for (const auto& f : families) {
    if (f.about->name == name) return &f;
  }
  return nullptr;
}

double MetricsSnapshot::Value(std::string_view name) const {
  const Family* f = Find(name);
  return f == nullptr ? 0 : f->value;
}

double MetricsSnapshot::Value(std::string_view name, std::string_view label) const {
  const Family* f = Find(name);
  if (f == nullptr) return 0;
  if (label.empty() && f->about->label.empty()) return f->value;
  for (const auto& [l, v] : f->by_label) {
    if (l == label) return v;
  }
  return 0;
}

std::string MetricsSnapshot::Text(std::string_view name) const {
  for (const auto& [n, text] : info) {
    if (n == name) return text;
  }
  return "";
}

Metrics::Entry& Metrics::Register(std::string name, std::string help, std::string label,
                                  MetricFamilyInfo::Type type) {
  Entry e;
  e.about = std::make_shared<const MetricFamilyInfo>(
      MetricFamilyInfo{std::move(name), std::move(help), std::move(label), type});
  return entries_.emplace_back(std::move(e));
}

Info& Metrics::AddInfo(std::string name, std::string help) {
  Info& i = infos_.emplace_back();
  Register(std::move(name), std::move(help), "", MetricFamilyInfo::Type::kInfo).info = &i;
  return i;
}

Counter& Metrics::AddCounter(std::string name, std::string help) {
  Counter& c = counters_.emplace_back();
  Register(std::move(name), std::move(help), "", MetricFamilyInfo::Type::kCounter).counter = &c;
  return c;
}

Gauge& Metrics::AddGauge(std::string name, std::string help) {
  Gauge& g = gauges_.emplace_back();
  Register(std::move(name), std::move(help), "", MetricFamilyInfo::Type::kGauge).gauge = &g;
  return g;
}

LabeledCounter& Metrics::AddLabeledCounter(std::string name, std::string label, std::string help) {
  LabeledCounter& l = labeled_.emplace_back();
  Register(std::move(name), std::move(help), std::move(label), MetricFamilyInfo::Type::kCounter)
      .labeled = &l;
  return l;
}

void Metrics::AddCollector(std::function<void()> collect) {
  collectors_.push_back(std::move(collect));
}

MetricsSnapshot Metrics::Snapshot(int64_t now_ms) const {
  for (const auto& collect : collectors_) collect();
  MetricsSnapshot s;
  s.taken_ms = now_ms;
  s.families.reserve(entries_.size());
  for (const Entry& e : entries_) {
    if (e.info) {
      s.info[e.about->name] = e.info->text();
      continue;
    }
    MetricsSnapshot::Family& f = s.families.emplace_back();
    f.about = e.about;
    if (e.counter) {
      f.value = static_cast<double>(e.counter->value());
    } else if (e.gauge) {
      f.value = e.gauge->value();
    } else {
      for (const auto& [label, n] : e.labeled->values()) f.by_label[label] = static_cast<double>(n);
    }
  }
  return s;
}

}  // namespace derms::aggregator
