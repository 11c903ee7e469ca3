// The dispatch module: grid/{substation}/status and vder/{id}/dispatch start
// dispatch runs over a virtual DER; each run allocates down the tree (stages
// 2-6 of the workflow), sends setpoints through the control channel, tracks
// the answers and moves shortfall to other members before it is recorded,
// shown on the virtual DERs' statuses and, for a utility's request, answered.
// The decisions are workflow:: and dispatch:: logic; this module feeds them
// and carries out what they say. DERs under an availability hold (an owner's
// charging schedule) are left out.
//
// A utility's dispatch outranks automatic balancing for its window: the
// run's members are held (holder "dispatch") from the request until the
// window ends, grid runs leave held DERs alone and ask the rest for the
// imbalance less what the held ones put out, and only a later utility
// request over the same DERs supersedes the window (its requester is told,
// DISPATCH_SUPERSEDED, on the result topic and its response topic). Every
// answer carries its outcome and the figures of its own run.
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_DISPATCH_DISPATCH_MODULE_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_DISPATCH_DISPATCH_MODULE_H_

#include <cstdint>
#include <map>
#include <memory>
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
#include "cloud_aggregator/workflow/dispatch_run.h"
#include "cloud_aggregator/workflow/stages.h"
#include "common/option_set.h"

namespace derms::aggregator {

struct DispatchOptions {
  // Answer grid/{substation}/status with setpoints (the dispatch workflow).
  bool enabled = true;
  // How long each dispatched setpoint lasts (device seconds); the next grid
  // status renews it, so a lost aggregator never leaves DERs stuck. Also the
  // horizon of storage headroom: a battery must sustain its setpoint this long.
  int64_t control_duration_s = 300;
  // A new setpoint within this (kW) of the one a DER already follows, with
  // more than half of that control's time left, is not re-sent: small
  // changes of target do not make the fleet thrash.
  double setpoint_deadband_kw = 0.1;
  // Wall milliseconds a run waits for answers before it moves the shortfall
  // of silent, rejecting or clamping members to others.
  int64_t response_timeout_ms = 5000;
  // Rounds of a run: the first allocation plus corrections.
  int64_t max_rounds = 3;
  // Stage 5's frequency term.
  workflow::FrequencyResponse frequency;

  void Describe(config::OptionSet& set);
};

class DispatchModule : public Module, public ControlAnswers {
 public:
  // `last_run_id`: the largest run id stored; new runs count on from it.
  DispatchModule(const DispatchOptions& options, const ModulePorts& ports, const FleetView& fleet,
                 VderBoard& board, ControlChannel& controls, controls::ControlLedger& ledger,
                 controls::AvailabilityHolds& holds, int64_t last_run_id);

  // Who the dispatch window holds are placed by.
  static constexpr char kHolder[] = "dispatch";

  const char* name() const override { return "dispatch"; }
  std::vector<topics::Kind> Topics() const override {
    return {topics::Kind::kGridStatus, topics::Kind::kVderDispatch};
  }
  void OnMessage(const Inbound& m, int64_t now_ms) override;
  // A dispatch request the router refused (empty payload, a topic whose
  // vder_id breaks the rules): answered DISPATCH_REFUSED on its response
  // topic.
  void OnRefused(const Inbound& m, const Status& why, int64_t now_ms) override;
  void AddJobs(Scheduler& scheduler) override;
  void OnStop(int64_t now_ms) override { FinishAll("stopped", now_ms); }
  void OnControlResponse(const std::string& der_id, const derms::v1::ControlResponse& r,
                         int64_t now_ms) override;

  // Ends every run as it stands (`outcome`: "reconfigured", "stopped").
  void FinishAll(const std::string& outcome, int64_t now_ms);
  size_t active_runs() const { return runs_.size(); }
  // Utility dispatch windows not yet over.
  size_t windows() const { return windows_.size(); }

 private:
  // A dispatch run waiting for answers.
  struct ActiveRun {
    std::unique_ptr<workflow::DispatchRun> run;
    storage::DispatchRunRecord record;  // stages 1-5 filled at the start
    int root = -1;
    int64_t start_ms = 0;  // intervals' start (0: on receipt)
    int64_t duration_s = 0;
    int64_t deadline_mono_ms = 0;
    std::unordered_map<std::string, size_t> member_index;  // der_id -> run member
    std::vector<bool> defaulted;  // silent members already told RETURN_TO_DEFAULT
    // A utility's dispatch request: answered when the run ends.
    bool answer = false;
    derms::v1::DispatchResult result;
    ReplyTo reply_to;
    // What the run must explain in its reason besides the DERs' answers.
    std::string note;
    // Set when a later request supersedes it.
    int64_t superseded_by_run_id = 0;
    std::string superseded_by_request_id;
  };

  // A utility's dispatch window: its members are held until `end_ms`.
  struct Window {
    std::string vder_id;
    std::vector<std::string> der_ids;
    int64_t start_ms = 0;
    int64_t end_ms = 0;
    bool answered = false;  // its run has ended and was answered with `result`
    derms::v1::DispatchResult result;
    ReplyTo reply_to;
  };

  void OnGridStatus(const Inbound& m, int64_t now_ms);
  void OnDispatchRequest(const Inbound& m, int64_t now_ms);
  // Stages 2-6 for the virtual DER `root`: `requested_kw` of output from its
  // active members (only those at `substation_id` when given).
  void StartRun(int root, double requested_kw, storage::DispatchRunRecord record,
                const std::string& substation_id, int64_t start_ms, int64_t duration_s,
                int64_t now_ms, ActiveRun pending);
  // The run's members. A grid run (`grid_run`) leaves out every held DER and
  // adds up in `held_kw` what those a utility's window holds put out; a
  // utility's run leaves out only DERs others than dispatch hold.
  std::vector<workflow::ActiveMember> ActiveMembers(int root, const std::string& substation_id,
                                                    int64_t duration_s, int64_t now_ms,
                                                    bool grid_run, double* held_kw,
                                                    size_t* held) const;
  // Ends the windows over `root` or any of `der_ids` (a later request's):
  // releases their holds and tells their requesters when already answered.
  void SupersedeWindows(int root, const std::vector<std::string>& der_ids, int64_t by_run_id,
                        const std::string& by_request_id, int64_t now_ms);
  void EndWindow(int64_t run_id);
  void SendRound(ActiveRun& run, const std::vector<size_t>& members, int64_t now_ms);
  void ReleaseUnneeded(const ActiveRun& run, int64_t now_ms);
  void Advance(int64_t run_id, int64_t now_ms);
  void CheckDeadlines(int64_t now_ms);
  void FinishRun(int64_t run_id, const std::string& outcome, int64_t now_ms);
  // On the virtual DER's result topic, and to the requester where it listens.
  void Answer(const derms::v1::DispatchResult& result, const ReplyTo& reply_to);

  const DispatchOptions options_;
  Outbox& outbox_;
  RecordSink& sink_;
  const TimeSource& time_;
  Intake& intake_;
  const FleetView& fleet_;
  VderBoard& board_;
  ControlChannel& controls_;
  controls::ControlLedger& ledger_;
  controls::AvailabilityHolds& holds_;
  Counter& runs_started_;
  std::map<int64_t, ActiveRun> runs_;  // by run id
  std::map<int64_t, Window> windows_;  // by the run id of the request that opened it
  int64_t last_run_id_;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_DISPATCH_DISPATCH_MODULE_H_
