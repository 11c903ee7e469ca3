// Virtual DERs: named groups of DERs and of other virtual DERs, defined in
// the aggregator's configuration. Pure logic: no transport, no storage.
//
// A virtual DER's direct members are the DERs listed in `der_ids` plus the
// DERs matching its filter (every filter kind given must match; within a kind
// any listed value matches; `tags` matches a DER carrying any of the tags).
// Its children are other virtual DERs; its members in total are its direct
// members and its children's members, to any depth.
//
// Dispatchable virtual DERs form a forest used to allocate dispatch: each DER
// is claimed for dispatch by at most one of them (the deepest that matches it)
// and each has at most one dispatchable parent. A virtual DER with
// `dispatchable = false` is a view: it aggregates (a provider's DERs across
// the tree, say) but cannot be dispatched and may not be a dispatchable
// virtual DER's child.
#ifndef DERMS_CLOUD_AGGREGATOR_VDER_VDER_TREE_H_
#define DERMS_CLOUD_AGGREGATOR_VDER_VDER_TREE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cloud_aggregator/dispatch/allocation.h"
#include "common/status.h"
#include "derms/v1/derms.pb.h"

namespace derms::vder {

struct Selector {
  std::vector<derms::v1::DerType> der_types;
  std::vector<std::string> substations;
  std::vector<std::string> feeders;
  std::vector<std::string> providers;
  std::vector<std::string> tags;
  std::vector<std::string> der_ids;  // explicit members, whatever the filter says

  bool HasFilter() const;
  bool Matches(const derms::v1::DerBirth& der) const;
};

struct VderDefinition {
  std::string id;    // [A-Za-z0-9_-]{1,64}, unique
  std::string name;  // for people; defaults to id
  dispatch::Policy policy = dispatch::Policy::kProRata;
  Selector members;
  std::vector<std::string> children;  // ids of other virtual DERs
  bool dispatchable = true;
  // Grid status of this substation (grid/{id}/status) drives this virtual
  // DER's dispatch workflow. At most one virtual DER per substation.
  std::string grid_substation;
  bool implicit = false;  // made by the aggregator for an unconfigured substation
};

// The validated shape: definitions plus parent/child links. Immutable except
// for implicit substation virtual DERs appended as DERs appear.
class VderTree {
 public:
  // Errors ("config_error") name the path of the virtual DER at fault:
  // bad or duplicate id, unknown child, cycle, two dispatchable parents, a
  // view as a dispatchable parent's child, two virtual DERs bound to one
  // substation's grid, two dispatchable virtual DERs that can claim the same
  // DER (neither inside the other).
  static StatusOr<VderTree> Build(std::vector<VderDefinition> definitions);

  size_t size() const { return nodes_.size(); }
  int Find(const std::string& id) const;  // -1 when unknown
  const VderDefinition& definition(int v) const { return nodes_[v].def; }
  const std::vector<int>& children(int v) const { return nodes_[v].children; }
  const std::vector<int>& parents(int v) const { return nodes_[v].parents; }
  int dispatch_parent(int v) const { return nodes_[v].dispatch_parent; }
  // "root/child/leaf" along dispatchable parents (else the first parent).
  std::string Path(int v) const;
  // The virtual DER bound to this substation's grid status, or -1.
  int ForGrid(const std::string& substation_id) const;
  // True when `ancestor` is `v` or above it through any parent.
  bool IsWithin(int v, int ancestor) const;

  struct Placement {
    int claimant = -1;            // dispatchable virtual DER that dispatches it
    std::vector<int> direct;      // every virtual DER holding it directly
    std::vector<int> containing;  // direct and all their ancestors, sorted
    std::string conflict;         // non-empty: two virtual DERs claim it
  };
  // Where a DER with this birth belongs. A DER no dispatchable virtual DER
  // claims, at a substation no virtual DER is bound to, is claimed by an
  // implicit virtual DER named after the substation (added here), so every
  // substation's grid status has a dispatch workflow without configuration.
  Placement Place(const derms::v1::DerBirth& der);

 private:
  struct Node {
    VderDefinition def;
    std::vector<int> children;
    std::vector<int> parents;
    int dispatch_parent = -1;
  };
  void Link();
  int AddImplicit(const std::string& substation_id);

  std::vector<Node> nodes_;
  std::unordered_map<std::string, int> by_id_;
  std::unordered_map<std::string, int> by_grid_;
};

// What a member DER adds to its virtual DERs' aggregates, from its birth and
// newest telemetry (see dispatch/der_capability.h).
struct Contribution {
  bool online = false;
  double output_kw = 0;
  double available_discharge_kw = 0;  // headroom above output over the duration
  double available_charge_kw = 0;     // headroom below output over the duration
  double energy_available_kwh = 0;    // stored energy (storage members)
};

struct Aggregate {
  uint32_t members_total = 0;  // DERs with a birth in the subtree
  uint32_t members_online = 0;
  double output_kw = 0;  // online members only, as are the next three
  double available_discharge_kw = 0;
  double available_charge_kw = 0;
  double energy_available_kwh = 0;
};

// Membership and aggregates over a tree, kept up to date DER by DER: a birth
// places the DER, each telemetry or status change adds the difference of its
// contribution to every virtual DER that contains it (no fleet rescans).
// Not thread-safe: owned by the aggregator's processing thread.
class VderFleet {
 public:
  explicit VderFleet(VderTree tree);

  const VderTree& tree() const { return tree_; }
  // Places (or re-places, when a rebirth moved it) the DER; returns the
  // conflict text when two virtual DERs claim it (it goes to the first).
  std::string Place(const derms::v1::DerBirth& der);
  // REQUIRES: the DER was placed.
  void Update(const std::string& der_id, const Contribution& c);

  const Aggregate& aggregate(int v) const { return aggregates_[v]; }
  // DERs held directly by `v`, sorted: claimed ones for a dispatchable
  // virtual DER, matched ones for a view.
  const std::vector<std::string>& direct_members(int v) const { return direct_[v]; }
  int claimant(const std::string& der_id) const;
  // Calls visit(v, der_id) for each DER held directly by `root` or by a
  // virtual DER below it whose subtree descend(child) admits, v being the
  // virtual DER that holds it; stops as soon as visit returns false.
  template <typename Descend, typename Visit>
  void ForEachMember(int root, Descend descend, Visit visit) const {
    std::vector<int> stack{root};
    while (!stack.empty()) {
      const int v = stack.back();
      stack.pop_back();
      for (int c : tree_.children(v)) {
        if (descend(c)) stack.push_back(c);
      }
      for (const std::string& der_id : direct_[v]) {
        if (!visit(v, der_id)) return;
      }
    }
  }
  // Bumped on every change of an aggregate, so publishers can skip idle ones.
  uint64_t version(int v) const { return versions_[v]; }

 private:
  // DERs placed alike share one placement (a fleet falls into a few dozen),
  // so each DER costs only its entry: memory per DER is a product figure.
  struct SharedPlacement {
    int claimant = -1;
    std::vector<int> direct;
    std::vector<int> containing;
  };
  // A contribution as stored: floats (half the memory), and every add and
  // subtract uses the stored value, so what was added is what is taken away;
  // the sums drift only by double rounding.
  struct StoredContribution {
    float output_kw = 0;
    float available_discharge_kw = 0;
    float available_charge_kw = 0;
    float energy_available_kwh = 0;
    bool online = false;
  };
  struct Entry {
    uint32_t placement = 0;
    StoredContribution last;
  };
  void Apply(const std::vector<int>& vders, const StoredContribution& c, double sign, int members);
  uint32_t Intern(VderTree::Placement p);
  void Grow();

  VderTree tree_;
  std::unordered_map<std::string, Entry> ders_;
  std::vector<SharedPlacement> placements_;  // [0] is "nowhere"
  std::map<std::pair<int, std::vector<int>>, uint32_t> placement_index_;
  std::vector<Aggregate> aggregates_;
  std::vector<std::vector<std::string>> direct_;
  std::vector<uint64_t> versions_;
};

}  // namespace derms::vder

#endif  // DERMS_CLOUD_AGGREGATOR_VDER_VDER_TREE_H_
