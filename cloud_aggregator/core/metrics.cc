#include "cloud_aggregator/core/metrics.h"

namespace derms::aggregator {

const MetricsSnapshot::Family* MetricsSnapshot::Find(const std::string& name) const {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

double MetricsSnapshot::Value(const std::string& name, const std::string& label) const {
  const Family* f = Find(name);
  if (f == nullptr) return 0;
  auto it = f->values.find(label);
  return it == f->values.end() ? 0 : it->second;
}

std::string MetricsSnapshot::Text(const std::string& name) const {
  auto it = info.find(name);
  return it == info.end() ? "" : it->second;
}

Info& Metrics::AddInfo(std::string name, std::string help) {
  Info& i = infos_.emplace_back();
  Entry e;
  e.name = std::move(name);
  e.help = std::move(help);
  e.info = &i;
  entries_.push_back(std::move(e));
  return i;
}

Counter& Metrics::AddCounter(std::string name, std::string help) {
  Counter& c = counters_.emplace_back();
  entries_.push_back(Entry{std::move(name), std::move(help), "", &c, nullptr, nullptr, nullptr});
  return c;
}

Gauge& Metrics::AddGauge(std::string name, std::string help) {
  Gauge& g = gauges_.emplace_back();
  entries_.push_back(Entry{std::move(name), std::move(help), "", nullptr, &g, nullptr, nullptr});
  return g;
}

LabeledCounter& Metrics::AddLabeledCounter(std::string name, std::string label,
                                           std::string help) {
  LabeledCounter& l = labeled_.emplace_back();
  entries_.push_back(Entry{std::move(name), std::move(help), std::move(label), nullptr, nullptr, &l, nullptr});
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
      s.info[e.name] = e.info->text();
      continue;
    }
    MetricsSnapshot::Family f;
    f.name = e.name;
    f.help = e.help;
    f.label = e.label;
    if (e.counter) {
      f.values[""] = static_cast<double>(e.counter->value());
    } else if (e.gauge) {
      f.type = MetricsSnapshot::Family::Type::kGauge;
      f.values[""] = e.gauge->value();
    } else {
      for (const auto& [label, n] : e.labeled->values()) f.values[label] = static_cast<double>(n);
    }
    s.families.push_back(std::move(f));
  }
  return s;
}

}  // namespace derms::aggregator
