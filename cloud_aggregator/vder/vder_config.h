// Reading the virtual DER tree and the merit-order costs from the
// aggregator's TOML configuration:
//
//   [[vder]]
//   id = "north"                 # [A-Za-z0-9_-]{1,64}
//   name = "North feeders"       # optional, for people
//   policy = "pro_rata"          # pro_rata | soc_balance | merit_order | fair_share
//   children = ["north-storage"] # other virtual DERs
//   der_types = ["BATTERY"]      # filter: every kind given must match
//   substations = ["sub-1"]
//   feeders = [], providers = [], tags = []
//   der_ids = ["bat-7"]          # explicit members
//   dispatchable = true          # false: a view that only aggregates
//   grid_substation = "sub-1"    # grid/sub-1/status drives its workflow
//
//   [costs]                      # merit order, per kWh of deviation
//   default = 0.0
//   type = { BATTERY = 0.02 }    # also provider = {...}, der = {...}
#ifndef DERMS_CLOUD_AGGREGATOR_VDER_VDER_CONFIG_H_
#define DERMS_CLOUD_AGGREGATOR_VDER_VDER_CONFIG_H_

#include <toml++/toml.h>

#include <string>
#include <vector>

#include "cloud_aggregator/dispatch/der_capability.h"
#include "cloud_aggregator/vder/vder_tree.h"
#include "common/status.h"

namespace derms::vder {

struct VderConfig {
  std::vector<vder::VderDefinition> vders;
  dispatch::CostTable costs;
};

// Errors ("config_error") name the file, the virtual DER and the key. The
// tree's own rules (cycles, unknown children, claims) are checked by
// vder::VderTree::Build.
StatusOr<VderConfig> ReadVderConfig(const toml::table& t, const std::string& source);

}  // namespace derms::vder

#endif  // DERMS_CLOUD_AGGREGATOR_VDER_VDER_CONFIG_H_
