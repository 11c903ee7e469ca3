// What a module needs from the world, as ports it is handed: publishing (an
// outbox), storing (a record sink), time (wall and monotonic). The service
// wires them to MQTT, the SQLite store and the system clocks; unit tests wire
// them to fakes and a stepped clock (tests/support/module_fakes.h), so no
// module's logic needs a broker or a disk to be tested.
#ifndef DERMS_CLOUD_AGGREGATOR_CORE_PORTS_H_
#define DERMS_CLOUD_AGGREGATOR_CORE_PORTS_H_

#include <cstdint>
#include <string>

#include "cloud_aggregator/storage/records.h"
#include "common/topics.h"

namespace derms::aggregator {

// Where a requester listens for its answer (MQTT 5 request/response). An
// empty topic: it gave none, and only a result topic carries the answer.
struct ReplyTo {
  std::string topic;
  std::string correlation_data;
};

// One message from the broker, its topic already parsed by the router.
struct Inbound {
  std::string topic;
  std::string payload;
  ReplyTo reply_to;
  topics::Parsed parsed;
};

// Messages out. Called on the processing thread only; never blocks for the
// network (the adapter queues).
class Outbox {
 public:
  virtual ~Outbox() = default;
  // QoS 1.
  virtual void Publish(const std::string& topic, const std::string& payload,
                       bool retained = false) = 0;
  // Answers a request on its MQTT 5 response topic, if it gave one.
  virtual void Reply(const ReplyTo& to, const std::string& payload) = 0;
  // Connected to the broker now: periodic statuses wait for it rather than
  // be counted as published.
  virtual bool online() const = 0;
};

// Rows to keep. Adding never waits for the disk (a full queue aside); what
// is added is committed in order, and never released (journal, flushes)
// before it is.
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  virtual void Add(storage::Record record) = 0;
};

// Time. `NowMs` is the domain's clock (possibly simulated, shared with the
// fleet): timestamps, control windows, silence. `MonotonicMs` never jumps:
// timeouts, periods of jobs, publish intervals.
class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual int64_t NowMs() const = 0;
  virtual int64_t MonotonicMs() const = 0;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_CORE_PORTS_H_
