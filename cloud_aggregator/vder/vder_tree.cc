#include "cloud_aggregator/vder/vder_tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <set>

#include "common/topics.h"

namespace derms::vder {
namespace {

Status ConfigError(std::string message) {
  return Status::Error("config_error", std::move(message));
}

template <typename T>
bool Contains(const std::vector<T>& values, const T& v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

template <typename T>
bool AnyOf(const std::vector<T>& allowed, const T& v) {
  return allowed.empty() || Contains(allowed, v);
}

// Two filter kinds can hold the same DER unless both list values and none is
// shared (a DER has one type, substation, feeder and provider).
template <typename T>
bool KindsCanOverlap(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.empty() || b.empty()) return true;
  return std::any_of(a.begin(), a.end(), [&](const T& v) { return Contains(b, v); });
}

// Static check of two selectors that could claim one DER. Filters are decided
// here; an explicit der_id against another's filter depends on the DER's
// birth and is caught when it is placed.
std::string Overlap(const Selector& a, const Selector& b) {
  for (const auto& id : a.der_ids) {
    if (Contains(b.der_ids, id)) return fmt::format("both list der_id '{}'", id);
  }
  if (!a.HasFilter() || !b.HasFilter()) return "";
  if (KindsCanOverlap(a.der_types, b.der_types) && KindsCanOverlap(a.substations, b.substations) &&
      KindsCanOverlap(a.feeders, b.feeders) && KindsCanOverlap(a.providers, b.providers)) {
    return "their filters can match the same DER (give them disjoint der_types, substations, "
           "feeders or providers, or nest one inside the other)";
  }
  return "";
}

}  // namespace

bool Selector::HasFilter() const {
  return !der_types.empty() || !substations.empty() || !feeders.empty() || !providers.empty() ||
         !tags.empty();
}

bool Selector::Matches(const derms::v1::DerBirth& der) const {
  if (Contains(der_ids, der.der_id())) return true;
  if (!HasFilter()) return false;
  if (!AnyOf(der_types, der.der_type()) || !AnyOf(substations, der.substation_id()) ||
      !AnyOf(feeders, der.feeder_id()) || !AnyOf(providers, der.provider_id())) {
    return false;
  }
  if (tags.empty()) return true;
  return std::any_of(der.tags().begin(), der.tags().end(),
                     [&](const std::string& t) { return Contains(tags, t); });
}

StatusOr<VderTree> VderTree::Build(std::vector<VderDefinition> definitions) {
  VderTree tree;
  for (auto& def : definitions) {
    if (!topics::IsValidId(def.id)) {
      return ConfigError(fmt::format("vder id '{}' must match [A-Za-z0-9_-]{{1,64}}", def.id));
    }
    if (tree.by_id_.count(def.id)) {
      return ConfigError(fmt::format("vder '{}' is defined twice", def.id));
    }
    if (def.name.empty()) def.name = def.id;
    tree.by_id_[def.id] = static_cast<int>(tree.nodes_.size());
    tree.nodes_.push_back(Node{std::move(def), {}, {}, -1});
  }
  // Children first: paths in the messages below need the parent links.
  for (auto& node : tree.nodes_) {
    for (const auto& child : node.def.children) {
      auto it = tree.by_id_.find(child);
      if (it == tree.by_id_.end()) {
        return ConfigError(fmt::format("vder '{}': child '{}' is not defined", node.def.id, child));
      }
      if (Contains(node.children, it->second)) {
        return ConfigError(fmt::format("vder '{}': child '{}' listed twice", node.def.id, child));
      }
      node.children.push_back(it->second);
    }
  }
  // Cycles, reported as the loop of ids.
  std::vector<int> state(tree.nodes_.size(), 0);  // 0 new, 1 on the stack, 2 done
  std::vector<int> stack;
  std::string cycle;
  std::function<bool(int)> visit = [&](int v) {
    state[v] = 1;
    stack.push_back(v);
    for (int c : tree.nodes_[v].children) {
      if (state[c] == 1) {
        auto from = std::find(stack.begin(), stack.end(), c);
        for (auto it = from; it != stack.end(); ++it) cycle += tree.nodes_[*it].def.id + " -> ";
        cycle += tree.nodes_[c].def.id;
        return false;
      }
      if (state[c] == 0 && !visit(c)) return false;
    }
    stack.pop_back();
    state[v] = 2;
    return true;
  };
  for (size_t v = 0; v < tree.nodes_.size(); ++v) {
    if (state[v] == 0 && !visit(static_cast<int>(v))) {
      return ConfigError(fmt::format("vder cycle: {}", cycle));
    }
  }
  tree.Link();
  for (size_t v = 0; v < tree.nodes_.size(); ++v) {
    const Node& node = tree.nodes_[v];
    int dispatch_parents = 0;
    for (int p : node.parents) {
      if (!tree.nodes_[p].def.dispatchable) continue;
      if (!node.def.dispatchable) {
        return ConfigError(fmt::format(
            "vder '{}': child '{}' is a view (dispatchable = false); a dispatchable vder's "
            "children must be dispatchable",
            tree.Path(p), node.def.id));
      }
      if (++dispatch_parents > 1) {
        return ConfigError(
            fmt::format("vder '{}' is claimed for dispatch by two parents: '{}' and '{}'",
                        node.def.id, tree.Path(node.dispatch_parent), tree.Path(p)));
      }
    }
    const std::string& grid = node.def.grid_substation;
    if (grid.empty()) continue;
    if (!topics::IsValidId(grid)) {
      return ConfigError(
          fmt::format("vder '{}': grid_substation '{}' must match "
                      "[A-Za-z0-9_-]{{1,64}}",
                      tree.Path(v), grid));
    }
    if (!node.def.dispatchable) {
      return ConfigError(
          fmt::format("vder '{}': grid_substation needs a dispatchable vder (this one is a view)",
                      tree.Path(v)));
    }
    auto [it, inserted] = tree.by_grid_.emplace(grid, static_cast<int>(v));
    if (!inserted) {
      return ConfigError(fmt::format("vder '{}' and '{}' are both bound to the grid of '{}'",
                                     tree.Path(it->second), tree.Path(v), grid));
    }
  }
  // Two dispatchable virtual DERs, neither inside the other, must not be able
  // to claim one DER.
  for (size_t a = 0; a < tree.nodes_.size(); ++a) {
    for (size_t b = a + 1; b < tree.nodes_.size(); ++b) {
      const Node& na = tree.nodes_[a];
      const Node& nb = tree.nodes_[b];
      if (!na.def.dispatchable || !nb.def.dispatchable) continue;
      int ia = static_cast<int>(a), ib = static_cast<int>(b);
      if (tree.IsWithin(ia, ib) || tree.IsWithin(ib, ia)) continue;
      std::string why = Overlap(na.def.members, nb.def.members);
      if (!why.empty()) {
        return ConfigError(fmt::format("vder '{}' and '{}' both claim DERs for dispatch: {}",
                                       tree.Path(ia), tree.Path(ib), why));
      }
    }
  }
  return tree;
}

void VderTree::Link() {
  for (auto& node : nodes_) node.parents.clear();
  for (size_t v = 0; v < nodes_.size(); ++v) {
    for (int c : nodes_[v].children) {
      nodes_[c].parents.push_back(static_cast<int>(v));
      if (nodes_[v].def.dispatchable && nodes_[c].dispatch_parent < 0) {
        nodes_[c].dispatch_parent = static_cast<int>(v);
      }
    }
  }
}

int VderTree::Find(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? -1 : it->second;
}

int VderTree::ForGrid(const std::string& substation_id) const {
  auto it = by_grid_.find(substation_id);
  return it == by_grid_.end() ? -1 : it->second;
}

std::string VderTree::Path(int v) const {
  std::vector<int> chain{v};
  // Bounded: Build rejected cycles, but a path must never hang on a bug.
  while (chain.size() <= nodes_.size()) {
    const Node& n = nodes_[chain.back()];
    int up = n.dispatch_parent >= 0 ? n.dispatch_parent : (n.parents.empty() ? -1 : n.parents[0]);
    if (up < 0) break;
    chain.push_back(up);
  }
  std::string path;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += nodes_[*it].def.id;
  }
  return path;
}

bool VderTree::IsWithin(int v, int ancestor) const {
  if (v == ancestor) return true;
  for (int p : nodes_[v].parents) {
    if (IsWithin(p, ancestor)) return true;
  }
  return false;
}

int VderTree::AddImplicit(const std::string& substation_id) {
  VderDefinition def;
  def.id = substation_id;
  def.name = fmt::format("DERs at substation {}", substation_id);
  def.grid_substation = substation_id;
  def.implicit = true;
  def.members.substations = {substation_id};
  int v = static_cast<int>(nodes_.size());
  nodes_.push_back(Node{std::move(def), {}, {}, -1});
  by_id_[substation_id] = v;
  by_grid_[substation_id] = v;
  return v;
}

VderTree::Placement VderTree::Place(const derms::v1::DerBirth& der) {
  Placement p;
  std::vector<int> claims;
  for (size_t v = 0; v < nodes_.size(); ++v) {
    const VderDefinition& def = nodes_[v].def;
    // An implicit virtual DER takes only what nothing configured claims.
    if (def.implicit || !def.members.Matches(der)) continue;
    if (def.dispatchable) {
      claims.push_back(static_cast<int>(v));
    } else {
      p.direct.push_back(static_cast<int>(v));
    }
  }
  // The deepest claim wins: a DER matched by a virtual DER and by one of its
  // descendants is dispatched by the descendant.
  std::vector<int> deepest;
  for (int c : claims) {
    bool has_deeper =
        std::any_of(claims.begin(), claims.end(), [&](int d) { return d != c && IsWithin(d, c); });
    if (!has_deeper) deepest.push_back(c);
  }
  if (!deepest.empty()) {
    p.claimant = deepest[0];
    if (deepest.size() > 1) {
      p.conflict =
          fmt::format("der '{}' is claimed for dispatch by vder '{}' and '{}'; '{}' keeps it",
                      der.der_id(), Path(deepest[0]), Path(deepest[1]), Path(deepest[0]));
    }
  } else {
    const std::string& sub = der.substation_id();
    int implicit = Find(sub);
    if (implicit >= 0 && nodes_[implicit].def.implicit) {
      p.claimant = implicit;
    } else if (implicit < 0 && ForGrid(sub) < 0 && topics::IsValidId(sub)) {
      p.claimant = AddImplicit(sub);
    }
  }
  if (p.claimant >= 0) p.direct.push_back(p.claimant);
  std::sort(p.direct.begin(), p.direct.end());
  std::set<int> containing;
  std::function<void(int)> up = [&](int v) {
    if (!containing.insert(v).second) return;
    for (int parent : nodes_[v].parents) up(parent);
  };
  for (int v : p.direct) up(v);
  p.containing.assign(containing.begin(), containing.end());
  return p;
}

VderFleet::VderFleet(VderTree tree) : tree_(std::move(tree)), placements_(1) { Grow(); }

void VderFleet::Grow() {
  aggregates_.resize(tree_.size());
  direct_.resize(tree_.size());
  versions_.resize(tree_.size(), 0);
}

void VderFleet::Apply(const std::vector<int>& vders, const StoredContribution& c, double sign,
                      int members) {
  for (int v : vders) {
    Aggregate& a = aggregates_[v];
    a.members_total = static_cast<uint32_t>(static_cast<int64_t>(a.members_total) + members);
    if (c.online) {
      a.members_online = static_cast<uint32_t>(a.members_online + (sign > 0 ? 1 : -1));
      a.output_kw += sign * c.output_kw;
      a.available_discharge_kw += sign * c.available_discharge_kw;
      a.available_charge_kw += sign * c.available_charge_kw;
      a.energy_available_kwh += sign * c.energy_available_kwh;
    }
    ++versions_[v];
  }
}

uint32_t VderFleet::Intern(VderTree::Placement p) {
  auto key = std::make_pair(p.claimant, p.direct);
  auto it = placement_index_.find(key);
  if (it != placement_index_.end()) return it->second;
  auto index = static_cast<uint32_t>(placements_.size());
  placements_.push_back({p.claimant, std::move(p.direct), std::move(p.containing)});
  placement_index_.emplace(std::move(key), index);
  return index;
}

std::string VderFleet::Place(const derms::v1::DerBirth& der) {
  auto [it, inserted] = ders_.try_emplace(der.der_id());
  Entry& e = it->second;
  if (!inserted) {
    const SharedPlacement& old = placements_[e.placement];
    Apply(old.containing, e.last, -1, -1);
    for (int v : old.direct) {
      auto& list = direct_[v];
      list.erase(std::remove(list.begin(), list.end(), der.der_id()), list.end());
    }
  }
  VderTree::Placement p = tree_.Place(der);
  Grow();
  std::string conflict = std::move(p.conflict);
  e.placement = Intern(std::move(p));
  const SharedPlacement& now = placements_[e.placement];
  for (int v : now.direct) {
    auto& list = direct_[v];
    // Births mostly arrive in id order; keep the list sorted cheaply.
    list.insert(std::upper_bound(list.begin(), list.end(), der.der_id()), der.der_id());
  }
  Apply(now.containing, e.last, +1, +1);
  return conflict;
}

void VderFleet::Update(const std::string& der_id, const Contribution& c) {
  auto it = ders_.find(der_id);
  if (it == ders_.end()) return;
  Entry& e = it->second;
  StoredContribution stored{static_cast<float>(c.output_kw),
                            static_cast<float>(c.available_discharge_kw),
                            static_cast<float>(c.available_charge_kw),
                            static_cast<float>(c.energy_available_kwh), c.online};
  const SharedPlacement& p = placements_[e.placement];
  Apply(p.containing, e.last, -1, 0);
  Apply(p.containing, stored, +1, 0);
  e.last = stored;
}

int VderFleet::claimant(const std::string& der_id) const {
  auto it = ders_.find(der_id);
  return it == ders_.end() ? -1 : placements_[it->second.placement].claimant;
}

}  // namespace derms::vder
