// The curtailment module: fair PV curtailment against over-voltage on a
// feeder whose model the aggregator holds (an OpenDSS feeder and an
// operating point, from a scenario file: feeder/scenario.h).
//
// A run takes the PVs of a virtual DER that are active and say where they
// connect (DerBirth.feeder_node), each at the output its newest telemetry
// says it has available, places them on the feeder and asks the solver
// (feeder/curtailment.h) for each PV's curtailment ratio under a fairness
// policy; the solver's answer has been checked by the nonlinear power flow,
// and an answer the power flow says breaks the limits is never sent. Each
// curtailed PV gets a generation limit (Control.kind
// CONTROL_KIND_GENERATION_LIMIT, cap = (1 - ratio) x available) for
// `control_duration_s` and is held out of dispatch for as long (holder
// "curtailment"); a PV this run no longer curtails but an earlier one did
// is returned to its default. The run waits for the PVs' answers (or
// `response_timeout_ms`), then is recorded (curtailment_runs, its members
// and the feeder's voltages before and after) and published on
// vder/{vder_id}/curtail/result, and on a request's response topic.
//
// A run starts on request (vder/{vder_id}/curtail), every `every_s` for the
// configured virtual DER, or when one of its PVs reports a voltage above
// `trigger_voltage_pu`, or a grid status of the substation `vder_id` names
// does (voltage_pu), at most once per `min_interval_s`. One run per
// virtual DER at a time: a new one finishes the one still waiting.
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_CURTAILMENT_CURTAILMENT_MODULE_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_CURTAILMENT_CURTAILMENT_MODULE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cloud_aggregator/controls/availability.h"
#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/module.h"
#include "cloud_aggregator/modules/controls/control_channel.h"
#include "cloud_aggregator/modules/fleet/fleet_ports.h"
#include "common/option_set.h"
#include "feeder/curtailment.h"
#include "feeder/scenario.h"

namespace derms::aggregator {

struct CurtailmentOptions {
  // The feeder and its operating point (feeder/scenarios/*.toml); empty:
  // no feeder, and requests are refused saying so.
  std::string scenario;
  // The virtual DER whose PVs the schedule and the voltage watch curtail.
  std::string vder_id;
  // equal_ratio, per_area, equal_kw or min_total: for runs a request does
  // not choose for.
  std::string policy = "equal_ratio";
  // A run this often (wall seconds) for `vder_id`; 0: none.
  int64_t every_s = 0;
  // A PV of `vder_id` reporting voltage_v above this many times
  // `nominal_v` starts a run; 0: no watch.
  double trigger_voltage_pu = 0;
  double nominal_v = 240;
  // Least wall time between two runs the watch starts.
  int64_t min_interval_s = 60;
  // How long a generation limit lasts (device seconds); the next run renews it.
  int64_t control_duration_s = 900;
  // Wall milliseconds a run waits for its PVs' answers.
  int64_t response_timeout_ms = 5000;

  void Describe(config::OptionSet& set);
};

class CurtailmentModule : public Module, public ControlAnswers {
 public:
  // Reads the scenario and its feeder (errors name the file).
  static StatusOr<std::unique_ptr<CurtailmentModule>> Create(const CurtailmentOptions& options,
                                                             const ModulePorts& ports,
                                                             const FleetView& fleet,
                                                             ControlChannel& controls,
                                                             controls::AvailabilityHolds& holds);

  // Who the holds on curtailed PVs are placed by.
  static constexpr char kHolder[] = "curtailment";

  const char* name() const override { return "curtailment"; }
  std::vector<topics::Kind> Topics() const override { return {topics::Kind::kVderCurtail}; }
  void OnMessage(const Inbound& m, int64_t now_ms) override;
  // Grid statuses (dispatch owns them): one of `vder_id`'s substation with
  // voltage_pu above trigger_voltage_pu starts a run, as a PV's voltage does.
  std::vector<topics::Kind> Observes() const override { return {topics::Kind::kGridStatus}; }
  void OnObserved(const Inbound& m, int64_t now_ms) override;
  void OnRefused(const Inbound& m, const Status& why, int64_t now_ms) override;
  std::vector<std::string> Tables() const override;
  void AddJobs(Scheduler& scheduler) override;
  void OnStop(int64_t now_ms) override;
  void OnControlResponse(const std::string& der_id, const derms::v1::ControlResponse& r,
                         int64_t now_ms) override;

  // Starts a run over `vder_id`'s PVs (`trigger`: "request", "schedule",
  // "over_voltage"); one that cannot start is answered and recorded with why.
  void StartRun(const std::string& vder_id, const std::string& trigger,
                const derms::v1::CurtailRequest& request, const ReplyTo& reply_to,
                int64_t now_ms);
  size_t active_runs() const { return runs_.size(); }

 private:
  struct Run {
    derms::v1::CurtailResult result;
    std::map<std::string, size_t> member_by_command;  // command_id -> result.members index
    size_t waiting = 0;
    int64_t deadline_mono_ms = 0;
    ReplyTo reply_to;
    // The feeder's voltages, for the record: (bus, phase 1-3, before, after).
    struct Voltage {
      std::string bus;
      int phase;
      double before_pu, after_pu;
      double distance_kft;
    };
    std::vector<Voltage> voltages;
  };

  CurtailmentModule(const CurtailmentOptions& options, const ModulePorts& ports,
                    const FleetView& fleet, ControlChannel& controls,
                    controls::AvailabilityHolds& holds, std::unique_ptr<feeder::Scenario> scenario,
                    std::unique_ptr<feeder::FeederModel> model, std::vector<double> load_shape);

  // Loads at this multiple of nominal at `now_ms`: the scenario's, times its
  // day shape at the quarter-hour (UTC) when it has one.
  double LoadMultAt(int64_t now_ms) const;
  void WatchVoltages(int64_t now_ms);
  // Starts a watch run unless one is running or the last was too recent.
  bool StartWatchRun(const std::string& why, int64_t now_ms);
  void CheckDeadlines(int64_t now_ms);
  void Finish(const std::string& vder_id, const std::string& note, int64_t now_ms);
  void Record(const Run& run);
  void Answer(const derms::v1::CurtailResult& result, const ReplyTo& reply_to);

  const CurtailmentOptions options_;
  Outbox& outbox_;
  RecordSink& sink_;
  const TimeSource& time_;
  Intake& intake_;
  const FleetView& fleet_;
  ControlChannel& controls_;
  controls::AvailabilityHolds& holds_;
  Counter& runs_started_;
  Counter& pvs_curtailed_;
  std::unique_ptr<feeder::Scenario> scenario_;  // null: not configured
  std::unique_ptr<feeder::FeederModel> feeder_;
  std::vector<double> load_shape_;  // empty: the scenario's load_mult all day
  std::map<std::string, Run> runs_;  // by vder_id
  // PVs each virtual DER's last run curtailed: released when a later run
  // no longer needs them.
  std::map<std::string, std::set<std::string>> curtailed_;
  // Run ids are the domain clock's milliseconds at the start (one more when
  // two start in one millisecond): unique across restarts without a lookup.
  int64_t last_run_id_ = 0;
  int64_t last_watch_run_mono_ms_ = INT64_MIN / 2;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_CURTAILMENT_CURTAILMENT_MODULE_H_
