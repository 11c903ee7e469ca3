#include "cloud_aggregator/workflow/tree_allocation.h"

namespace derms::workflow {
namespace {

class TreeAllocator {
 public:
  TreeAllocator(const vder::VderTree& tree, const std::vector<ActiveMember>& members,
                double duration_s)
      : tree_(tree),
        members_(members),
        duration_s_(duration_s),
        by_node_(tree.size()),
        summary_(tree.size()),
        summarised_(tree.size(), false) {
    for (size_t i = 0; i < members.size(); ++i) by_node_[members[i].vder].push_back(i);
  }

  TreeAllocation Run(int root, double target_kw) {
    TreeAllocation out;
    out.target_kw.assign(members_.size(), 0.0);
    out.vder_target_kw.assign(tree_.size(), 0.0);
    out.root = Split(root, target_kw, &out);
    return out;
  }

 private:
  // The dispatchable children of `v` (views are never dispatch parts).
  template <typename F>
  void ForEachChild(int v, F f) const {
    for (int c : tree_.children(v)) {
      if (tree_.definition(c).dispatchable) f(c);
    }
  }

  // `v` and everything under it as one member (memoised).
  const dispatch::Member& Summary(int v) {
    if (summarised_[v]) return summary_[v];
    dispatch::Member sum;
    double soc_energy = 0, cost_weight = 0, cost_sum = 0;
    auto add = [&](const dispatch::Member& m) {
      sum.baseline_kw += m.baseline_kw;
      sum.min_kw += m.min_kw;
      sum.max_kw += m.max_kw;
      if (m.energy_capacity_kwh > 0 && m.soc_pct >= 0) {
        sum.energy_capacity_kwh += m.energy_capacity_kwh;
        soc_energy += m.soc_pct * m.energy_capacity_kwh;
      }
      double range = m.max_kw - m.min_kw;
      cost_weight += range;
      cost_sum += range * m.cost;
    };
    ForEachChild(v, [&](int c) { add(Summary(c)); });
    for (size_t i : by_node_[v]) add(members_[i].member);
    sum.soc_pct = sum.energy_capacity_kwh > 0 ? soc_energy / sum.energy_capacity_kwh : -1;
    sum.cost = cost_weight > 0 ? cost_sum / cost_weight : 0;
    summary_[v] = sum;
    summarised_[v] = true;
    return summary_[v];
  }

  dispatch::Allocation Split(int v, double target_kw, TreeAllocation* out) {
    std::vector<int> children;
    ForEachChild(v, [&](int c) { children.push_back(c); });
    const std::vector<size_t>& direct = by_node_[v];
    std::vector<dispatch::Member> parts;
    parts.reserve(children.size() + direct.size());
    for (int c : children) parts.push_back(Summary(c));
    for (size_t i : direct) parts.push_back(members_[i].member);
    dispatch::Allocation a =
        dispatch::Allocate(tree_.definition(v).policy, target_kw, parts, duration_s_);
    out->vder_target_kw[v] = a.allocated_kw;
    for (size_t k = 0; k < children.size(); ++k) Split(children[k], a.target_kw[k], out);
    for (size_t k = 0; k < direct.size(); ++k) {
      out->target_kw[direct[k]] = a.target_kw[children.size() + k];
    }
    return a;
  }

  const vder::VderTree& tree_;
  const std::vector<ActiveMember>& members_;
  const double duration_s_;
  std::vector<std::vector<size_t>> by_node_;
  std::vector<dispatch::Member> summary_;
  std::vector<bool> summarised_;
};

}  // namespace

TreeAllocation AllocateTree(const vder::VderTree& tree, int root, double target_kw,
                            const std::vector<ActiveMember>& members, double duration_s) {
  return TreeAllocator(tree, members, duration_s).Run(root, target_kw);
}

}  // namespace derms::workflow
