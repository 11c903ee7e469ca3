// A feature of the aggregator. A module owns its state, declares the topic
// kinds it consumes, and does its work on a message and in the jobs it adds
// to the scheduler. It reaches the world only through the ports it was
// constructed with (ports.h) and other modules only through the narrow
// interfaces the wiring hands it, never through their maps.
//
// Every call comes on the processing thread.
#ifndef DERMS_CLOUD_AGGREGATOR_CORE_MODULE_H_
#define DERMS_CLOUD_AGGREGATOR_CORE_MODULE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/ports.h"
#include "cloud_aggregator/core/scheduler.h"
#include "common/status.h"
#include "common/topics.h"

namespace derms::aggregator {

// The ports every module is handed, in one bundle (the core's, or a test's
// fakes): publish, store, time, say what became of a message, count.
struct ModulePorts {
  Outbox& outbox;
  RecordSink& sink;
  const TimeSource& time;
  Intake& intake;
  Metrics& metrics;
};

class Module {
 public:
  virtual ~Module() = default;
  virtual const char* name() const = 0;
  // Topic kinds routed to this module (one module per kind).
  virtual std::vector<topics::Kind> Topics() const { return {}; }
  // One message of a declared kind, its topic parsed, its payload non-empty.
  virtual void OnMessage(const Inbound& /*m*/, int64_t /*now_ms*/) {}
  // Kinds another module owns that this one also reads, after the owner has
  // handled (and counted) each message: curtailment watching the grid
  // statuses dispatch runs on.
  virtual std::vector<topics::Kind> Observes() const { return {}; }
  // One message of an observed kind. The owner accepts or rejects it; an
  // observer checks what it reads and never counts it.
  virtual void OnObserved(const Inbound& /*m*/, int64_t /*now_ms*/) {}
  // The tables the module keeps for itself ("CREATE TABLE IF NOT EXISTS
  // ..."), created before its first row; it writes them with
  // storage::TableRowRecord through its RecordSink.
  virtual std::vector<std::string> Tables() const { return {}; }
  // A message meant for one of the module's kinds that the router refused
  // before it (`why`: an empty payload, an identifier in the topic that
  // breaks the rules), already counted and logged. `m.parsed.kind` is the
  // kind it was meant for; `m.parsed.id` is empty when the topic's was bad.
  // A module that answers requests answers this one too (its response
  // topic), so no request goes unanswered.
  virtual void OnRefused(const Inbound& /*m*/, const Status& /*why*/, int64_t /*now_ms*/) {}
  // Adds the module's periodic jobs, once, at wiring time.
  virtual void AddJobs(Scheduler& /*scheduler*/) {}
  // The service stops: close what is in progress (it is stored after this).
  virtual void OnStop(int64_t /*now_ms*/) {}
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_CORE_MODULE_H_
