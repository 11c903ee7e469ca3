// What other modules may know of the fleet, and tell it: read-only DER and
// virtual DER state (FleetView), and what dispatch shows on a virtual DER's
// status (VderBoard). Implemented by the fleet module.
#ifndef DERMS_CLOUD_AGGREGATOR_MODULES_FLEET_FLEET_PORTS_H_
#define DERMS_CLOUD_AGGREGATOR_MODULES_FLEET_FLEET_PORTS_H_

#include <cstdint>
#include <string>

#include "cloud_aggregator/dispatch/der_capability.h"
#include "cloud_aggregator/registry/der_registry.h"
#include "cloud_aggregator/vder/vder_tree.h"
#include "derms/v1/derms.pb.h"

namespace derms::aggregator {

class FleetView {
 public:
  virtual ~FleetView() = default;
  // Null when the DER was never heard of.
  virtual const registry::DerState* Find(const std::string& der_id) const = 0;
  // Online, born, not faulted, heard from within its offline window.
  virtual bool IsActive(const registry::DerState& der, int64_t now_ms) const = 0;
  // The virtual DER tree with its members and aggregates. The reference is
  // valid until the next configuration reload.
  virtual const vder::VderFleet& vders() const = 0;
  // Merit-order costs ([costs]).
  virtual const dispatch::CostTable& costs() const = 0;
};

class VderBoard {
 public:
  virtual ~VderBoard() = default;
  // The grid status that drives virtual DER `v` (index in the tree).
  virtual void ShowGrid(int v, const derms::v1::GridStatus& grid) = 0;
  // The share of a dispatch run virtual DER `v` was given, and the run.
  virtual void ShowRun(int v, double target_kw, const derms::v1::DispatchRunSummary& run) = 0;
};

}  // namespace derms::aggregator

#endif  // DERMS_CLOUD_AGGREGATOR_MODULES_FLEET_FLEET_PORTS_H_
