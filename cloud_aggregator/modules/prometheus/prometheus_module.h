// The aggregator's metrics in Prometheus' text format, written to a file
// that node_exporter's textfile collector serves (--collector.textfile.
// directory). The second renderer of the metrics registry, beside the
// aggregator/status JSON: it reads the same snapshot and keeps no counter of
// its own.
//
// [prometheus]
// textfile = "/var/lib/prometheus/node-exporter/derms.prom"   # "" (default): off
// interval_s = 15
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_PROMETHEUS_PROMETHEUS_MODULE_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_PROMETHEUS_PROMETHEUS_MODULE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/module.h"
#include "common/option_set.h"
#include "common/status.h"

namespace derms::aggregator {

struct PrometheusOptions {
  std::string textfile;  // empty: not written
  int64_t interval_s = 15;

  void Describe(config::OptionSet& set);
};

// Every family of `snapshot` as Prometheus text exposition (format 0.0.4):
// names prefixed "derms_aggregator_", counters suffixed "_total", labelled
// families one sample per label value, a non-empty text as an "_info"
// sample carrying it in a label.
std::string RenderPrometheus(const MetricsSnapshot& snapshot);

// Writes `text` to `path` whole or not at all: a temporary file in the same
// directory, then renamed over it, so a scrape never reads half a file.
[[nodiscard]] Status WriteFileAtomically(const std::string& path, const std::string& text);

class PrometheusModule : public Module {
 public:
  // Refuses a textfile whose directory does not exist (naming the key).
  static StatusOr<std::unique_ptr<PrometheusModule>> Create(const PrometheusOptions& options,
                                                            const ModulePorts& ports);

  const char* name() const override { return "prometheus"; }
  // Each period the processing thread takes a snapshot; the file is
  // written on the background executor, so a slow disk never holds up
  // ingest.
  void AddJobs(Scheduler& scheduler) override;

 private:
  PrometheusOptions options_;
  const Metrics& metrics_;
  Intake& intake_;
  Counter& written_;
  Counter& write_errors_;

  PrometheusModule(const PrometheusOptions& options, const ModulePorts& ports);
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_PROMETHEUS_PROMETHEUS_MODULE_H_
