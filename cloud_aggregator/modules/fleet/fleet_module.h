// The fleet module: every DER's birth, status and telemetry (der/+/birth,
// status, telemetry) kept in the DER registry, each DER placed in the
// virtual DER tree with its contribution to the aggregates. Telemetry is
// checked against its DER's nameplate first: an implausible sample, or one
// from a DER with no birth, is quarantined (a QuarantineRecord, counted as
// rejected by reason) and never reaches the registry, `telemetry` or the
// rollups; a seq jump (registry) is stored but not adopted. Also: each DER
// placed in the
// virtual DER tree with its contribution to the aggregates, vder/{id}/status
// published, the tree re-read on a reload. Other modules read it through
// FleetView and write to virtual DER statuses through VderBoard.
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_FLEET_FLEET_MODULE_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_FLEET_FLEET_MODULE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cloud_aggregator/core/intake.h"
#include "cloud_aggregator/core/metrics.h"
#include "cloud_aggregator/core/module.h"
#include "cloud_aggregator/modules/controls/control_channel.h"
#include "cloud_aggregator/modules/fleet/fleet_ports.h"
#include "cloud_aggregator/registry/validation.h"
#include "cloud_aggregator/vder/vder_config.h"
#include "common/option_set.h"

namespace derms::aggregator {

struct FleetOptions {
  // A DER silent for this many of its telemetry intervals is offline.
  int64_t offline_after_intervals = 3;
  // vder/{id}/status: published on a change of at least `vder_status_change_kw`
  // (or of membership) but at most once per `vder_status_min_interval_ms`,
  // and at least every `vder_status_interval_s` (wall time).
  int64_t vder_status_interval_s = 30;
  int64_t vder_status_min_interval_ms = 1000;
  double vder_status_change_kw = 1.0;
  // The horizon of a DER's storage headroom in its available kW (a battery
  // must sustain it this long): dispatch's control duration, set by wiring.
  int64_t headroom_s = 300;
  // How far telemetry may stray from its DER's nameplate and the clock
  // before it is quarantined (registry/validation.h).
  registry::PlausibilityOptions plausibility;

  void Describe(config::OptionSet& set);
};

class FleetModule : public Module, public FleetView, public VderBoard {
 public:
  // Re-reads the virtual DERs and costs for a reload (a bad file: an error,
  // and the running ones stay).
  using ConfigLoader = std::function<StatusOr<vder::VderConfig>()>;
  // `stored_births`: the newest birth of each DER in the store, by der_id.
  // Until a DER's birth arrives this run (after a restart the broker does not
  // resend retained births to a session it kept), its telemetry is checked
  // against that nameplate instead of being quarantined as unborn.
  FleetModule(const FleetOptions& options, vder::VderConfig config, vder::VderTree tree,
              const ModulePorts& ports, ControlChannel& controls,
              std::map<std::string, derms::v1::DerBirth> stored_births = {});

  const char* name() const override { return "fleet"; }
  std::vector<topics::Kind> Topics() const override;
  void OnMessage(const Inbound& m, int64_t now_ms) override;
  void AddJobs(Scheduler& scheduler) override;

  // Replaces the virtual DER tree and costs; `before` runs first (dispatch
  // ends the runs of the old tree). A loader error leaves all as it was.
  void Reload(const ConfigLoader& load, const std::function<void(int64_t)>& before, int64_t now_ms);

  // FleetView.
  const registry::DerState* Find(const std::string& der_id) const override {
    return registry_.Find(der_id);
  }
  bool IsActive(const registry::DerState& der, int64_t now_ms) const override {
    return registry_.IsActive(der, now_ms);
  }
  const vder::VderFleet& vders() const override { return *fleet_; }
  const dispatch::CostTable& costs() const override { return config_.costs; }

  // VderBoard.
  void ShowGrid(int v, const derms::v1::GridStatus& grid) override;
  void ShowRun(int v, double target_kw, const derms::v1::DispatchRunSummary& run) override;

  // Publishes every virtual DER's status now (after a reconnect).
  void PublishAllVderStatuses() { PublishVderStatuses(true); }

 private:
  // What operators see of one virtual DER (vder/{id}/status), and when it
  // was last published (monotonic ms).
  struct VderView {
    derms::v1::VirtualDerStatus status;  // the last run and grid; aggregates filled on publish
    bool changed = true;                 // something beyond the aggregates changed
    uint64_t published_version = 0;
    int64_t published_mono_ms = -1;
    vder::Aggregate published;
  };

  void OnBirth(const Inbound& m, int64_t now_ms);
  void OnStatus(const Inbound& m, int64_t now_ms);
  void OnTelemetry(const Inbound& m, int64_t now_ms);
  // Keeps `t` apart (telemetry_quarantine) and counts it as rejected for
  // `why`, a Status naming the DER, the field, the value and the rule.
  void Quarantine(derms::v1::Telemetry t, const Status& why, const std::string& topic,
                  int64_t now_ms);
  void NoteOnlineChange(const registry::DerState& der, bool online, const std::string& cause,
                        int64_t now_ms);
  void PlaceDer(const registry::DerState& der);
  void RefreshContribution(const registry::DerState& der);
  // Stores which DERs each virtual DER holds, for the history jobs' rollups.
  void StoreMembership();
  void PublishVderStatuses(bool force_all);
  VderView& View(int v);
  void Count();

  const FleetOptions options_;
  Outbox& outbox_;
  RecordSink& sink_;
  const TimeSource& time_;
  Intake& intake_;
  ControlChannel& controls_;
  registry::DerRegistry registry_;
  std::map<std::string, derms::v1::DerBirth> stored_births_;  // see the constructor
  vder::VderConfig config_;
  std::unique_ptr<vder::VderFleet> fleet_;
  std::vector<VderView> views_;     // by virtual DER index
  bool membership_changed_ = true;  // since StoreMembership

  Gauge& ders_known_;
  Gauge& ders_online_;
  Gauge& vders_;
  Counter& vder_conflicts_;
  Counter& seq_jumps_;
  Counter& reloads_;
  Counter& reloads_rejected_;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_FLEET_FLEET_MODULE_H_
