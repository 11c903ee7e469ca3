// The charging module: price forecasts in (forecast/price/{node}), merged
// into the price book and stored; schedule requests in (schedule/request),
// solved by scheduling::OptimizeSingle (or OptimizeShared), answered on
// schedule/{request_id}/result and on the MQTT 5 response topic (a request
// carrying only an earlier request_id fetches its result again), and carried
// out by the DER's edge agent as one multi-interval Control when the request
// names a DER. A DER following a schedule is held out of dispatch until the
// schedule ends (an availability hold), and dispatch yields it.
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_CHARGING_CHARGING_MODULE_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_CHARGING_CHARGING_MODULE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cloud_aggregator/controls/availability.h"
#include "cloud_aggregator/controls/control_ledger.h"
#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/module.h"
#include "cloud_aggregator/modules/controls/control_channel.h"
#include "cloud_aggregator/modules/fleet/fleet_ports.h"
#include "cloud_aggregator/scheduling/price_book.h"
#include "common/option_set.h"

namespace derms::aggregator {

struct ChargingOptions {
  // A request naming a DER but no node is priced at the node of the DER's
  // substation, else at `default_node`.
  std::map<std::string, std::string> nodes;  // substation_id -> pricing node
  std::string default_node;
  // Priority of the schedule Controls sent to DERs: above dispatch's 0, so
  // the next grid run does not undo an owner's schedule.
  int64_t control_priority = 1;
  // Price forecasts for intervals that ended longer ago than this are purged.
  int64_t keep_prices_days = 31;

  void Describe(config::OptionSet& set);
};

class ChargingModule : public Module, public ControlAnswers {
 public:
  // Reads a stored result (another connection; runs on the background
  // executor): nullopt when there is none.
  using ResultArchive =
      std::function<std::optional<derms::v1::ScheduleResult>(const std::string& request_id)>;

  // `stored_prices`: the forecasts kept in SQLite, in arrival order.
  ChargingModule(const ChargingOptions& options, const ModulePorts& ports, const FleetView& fleet,
                 ControlChannel& controls, controls::ControlLedger& ledger,
                 controls::AvailabilityHolds& holds, Scheduler& scheduler, ResultArchive archive,
                 const std::vector<derms::v1::PriceForecast>& stored_prices);

  const char* name() const override { return "charging"; }
  std::vector<topics::Kind> Topics() const override {
    return {topics::Kind::kForecast, topics::Kind::kScheduleRequest};
  }
  void OnMessage(const Inbound& m, int64_t now_ms) override;
  // A schedule request the router refused (an empty payload): answered
  // SCHEDULE_FAILED with the reason on its response topic.
  void OnRefused(const Inbound& m, const Status& why, int64_t now_ms) override;
  void OnControlResponse(const std::string& der_id, const derms::v1::ControlResponse& r,
                         int64_t now_ms) override;

  const scheduling::PriceBook& price_book() const { return price_book_; }
  size_t schedules_kept() const { return schedules_.size(); }

 private:
  struct ScheduleEntry {
    derms::v1::ScheduleRequest request;
    derms::v1::ScheduleResult result;
    int64_t received_ms = 0;
  };
  void OnPriceForecast(const Inbound& m, int64_t now_ms);
  void OnScheduleRequest(const Inbound& m, int64_t now_ms);
  // Solves, and sends the schedule to the DER when asked; fills entry.result.
  void Solve(ScheduleEntry& entry, int64_t now_ms);
  void Publish(const derms::v1::ScheduleResult& result, const ReplyTo& reply_to, int64_t now_ms,
               bool on_result_topic = true);
  void Keep(const std::string& id, ScheduleEntry entry);

  const ChargingOptions options_;
  Outbox& outbox_;
  RecordSink& sink_;
  const TimeSource& time_;
  Intake& intake_;
  const FleetView& fleet_;
  ControlChannel& controls_;
  controls::ControlLedger& ledger_;
  controls::AvailabilityHolds& holds_;
  Scheduler& scheduler_;
  const ResultArchive archive_;
  scheduling::PriceBook price_book_;
  std::map<std::string, ScheduleEntry> schedules_;         // by request_id
  std::deque<std::string> schedule_order_;                 // request_ids, oldest first
  std::unordered_map<std::string, std::string> commands_;  // command_id -> request_id
  uint64_t schedules_made_ = 0;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_CHARGING_CHARGING_MODULE_H_
