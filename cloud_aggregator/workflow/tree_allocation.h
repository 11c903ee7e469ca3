// Stage 6: allocating a target down a tree of virtual DERs. Pure logic.
//
// At each virtual DER the target is split by that virtual DER's policy across
// its parts: each child virtual DER, seen as one member with the summed range
// of everything under it, and each DER it claims directly. Each child then
// splits its share the same way, down to the DERs. A child's share always
// lies within its summed range, so the leaves sum to the root's allocation.
//
// For a child seen as one member: baseline, range and storage capacity are
// sums; its state of charge is the capacity-weighted mean; its merit-order
// cost is the range-weighted mean of its members' costs.
#ifndef DERMS_CLOUD_AGGREGATOR_WORKFLOW_TREE_ALLOCATION_H_
#define DERMS_CLOUD_AGGREGATOR_WORKFLOW_TREE_ALLOCATION_H_

#include <vector>

#include "cloud_aggregator/dispatch/allocation.h"
#include "cloud_aggregator/vder/vder_tree.h"
#include "cloud_aggregator/workflow/stages.h"

namespace derms::workflow {

struct TreeAllocation {
  std::vector<double> target_kw;       // per member, in the members' order
  std::vector<double> vder_target_kw;  // per virtual DER of the tree (0 outside the subtree)
  dispatch::Allocation root;           // the root's totals and shortfall
};

// REQUIRES: every member's `vder` is `root` or a dispatchable descendant of it.
TreeAllocation AllocateTree(const vder::VderTree& tree, int root, double target_kw,
                            const std::vector<ActiveMember>& members, double duration_s);

}  // namespace derms::workflow

#endif  // DERMS_CLOUD_AGGREGATOR_WORKFLOW_TREE_ALLOCATION_H_
