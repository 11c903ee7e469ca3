// Virtual DERs: the configuration rules VderTree::Build enforces (every error
// names the virtual DER at fault by its path), where a DER is placed (filters,
// the deepest claim, runtime conflicts, views, implicit substation virtual
// DERs, rebirths), and VderFleet's incremental aggregates checked against a
// recount from scratch on random trees and fleets (fixed seeds, so every run
// is the same).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cloud_aggregator/vder/vder_tree.h"

using Catch::Matchers::Contains;
using derms::v1::DerBirth;
using derms::v1::DerType;
using derms::vder::Aggregate;
using derms::vder::Contribution;
using derms::vder::Selector;
using derms::vder::VderDefinition;
using derms::vder::VderFleet;
using derms::vder::VderTree;

namespace {

VderDefinition Vder(const std::string& id, std::vector<std::string> children = {}) {
  VderDefinition d;
  d.id = id;
  d.children = std::move(children);
  return d;
}

VderDefinition View(const std::string& id, std::vector<std::string> children = {}) {
  VderDefinition d = Vder(id, std::move(children));
  d.dispatchable = false;
  return d;
}

VderDefinition Filtered(const std::string& id, std::vector<DerType> types,
                        std::vector<std::string> substations,
                        std::vector<std::string> children = {}) {
  VderDefinition d = Vder(id, std::move(children));
  d.members.der_types = std::move(types);
  d.members.substations = std::move(substations);
  return d;
}

DerBirth Birth(const std::string& der_id, DerType type, const std::string& substation,
               const std::string& provider = "prov-a", std::vector<std::string> tags = {},
               const std::string& feeder = "feeder-1") {
  DerBirth b;
  b.set_der_id(der_id);
  b.set_der_type(type);
  b.set_substation_id(substation);
  b.set_provider_id(provider);
  b.set_feeder_id(feeder);
  for (const auto& t : tags) b.add_tags(t);
  b.set_max_discharge_kw(10);
  b.set_max_charge_kw(10);
  return b;
}

Contribution Online(double output_kw, double discharge_kw = 0, double charge_kw = 0,
                    double energy_kwh = 0) {
  Contribution c;
  c.online = true;
  c.output_kw = output_kw;
  c.available_discharge_kw = discharge_kw;
  c.available_charge_kw = charge_kw;
  c.energy_available_kwh = energy_kwh;
  return c;
}

VderTree BuildOk(std::vector<VderDefinition> definitions) {
  auto tree = VderTree::Build(std::move(definitions));
  INFO(tree.status().ToString());
  REQUIRE(tree.ok());
  return std::move(tree).value();
}

// The message of a rejected configuration; fails the test if it was accepted.
std::string BuildError(std::vector<VderDefinition> definitions) {
  auto tree = VderTree::Build(std::move(definitions));
  REQUIRE_FALSE(tree.ok());
  CHECK(tree.status().code() == "config_error");
  return tree.status().message();
}

int Index(const VderFleet& fleet, const std::string& id) {
  int v = fleet.tree().Find(id);
  INFO("vder '" << id << "'");
  REQUIRE(v >= 0);
  return v;
}

using Ids = std::vector<std::string>;

}  // namespace

// --- Configuration errors ----------------------------------------------------

TEST_CASE("a cycle of virtual DERs is rejected and the message lists the loop", "[unit][vder]") {
  // root leads into the loop but is not part of it.
  std::string msg =
      BuildError({Vder("root", {"a"}), Vder("a", {"b"}), Vder("b", {"c"}), Vder("c", {"a"})});
  CHECK_THAT(msg, Contains("a -> b -> c -> a"));
  CHECK_THAT(msg, !Contains("root"));

  CHECK_THAT(BuildError({Vder("solo", {"solo"})}), Contains("solo -> solo"));
}

TEST_CASE("an unknown child is rejected naming the parent and the child", "[unit][vder]") {
  std::string msg = BuildError({Vder("parent", {"ghost"})});
  CHECK_THAT(msg, Contains("'parent'"));
  CHECK_THAT(msg, Contains("'ghost'"));
}

TEST_CASE("a child listed twice by one parent is rejected", "[unit][vder]") {
  std::string msg = BuildError({Vder("parent", {"kid", "kid"}), Vder("kid")});
  CHECK_THAT(msg, Contains("'parent'"));
  CHECK_THAT(msg, Contains("'kid'"));
}

TEST_CASE("a virtual DER with two dispatchable parents is rejected naming both parents' paths",
          "[unit][vder]") {
  std::string msg = BuildError(
      {Vder("root", {"p1", "p2"}), Vder("p1", {"shared"}), Vder("p2", {"shared"}), Vder("shared")});
  CHECK_THAT(msg, Contains("'shared'"));
  CHECK_THAT(msg, Contains("'root/p1'"));
  CHECK_THAT(msg, Contains("'root/p2'"));
}

TEST_CASE("a view may share a child with its one dispatchable parent", "[unit][vder]") {
  VderTree tree = BuildOk({Vder("root", {"kid"}), View("overview", {"kid"}), Vder("kid")});
  int kid = tree.Find("kid");
  REQUIRE(kid >= 0);
  CHECK(tree.parents(kid).size() == 2);
  CHECK(tree.dispatch_parent(kid) == tree.Find("root"));
  CHECK(tree.Path(kid) == "root/kid");
  CHECK(tree.IsWithin(kid, tree.Find("overview")));
}

TEST_CASE("a view cannot be a dispatchable virtual DER's child", "[unit][vder]") {
  std::string msg = BuildError({Vder("root", {"mid"}), Vder("mid", {"seen"}), View("seen")});
  CHECK_THAT(msg, Contains("'root/mid'"));
  CHECK_THAT(msg, Contains("'seen'"));
  CHECK_THAT(msg, Contains("view"));

  // The other way round is fine: a view over dispatchable virtual DERs.
  BuildOk({View("overview", {"root"}), Vder("root", {"kid"}), Vder("kid")});
}

TEST_CASE("two dispatchable virtual DERs that are not nested and can claim one DER are rejected",
          "[unit][vder]") {
  // Batteries at sub-1 match both.
  std::string msg = BuildError({Vder("root", {"x", "y"}), Filtered("x", {derms::v1::BATTERY}, {}),
                                Filtered("y", {}, {"sub-1"})});
  CHECK_THAT(msg, Contains("'root/x'"));
  CHECK_THAT(msg, Contains("'root/y'"));

  // Two roots with the same substation.
  msg = BuildError({Filtered("north", {}, {"sub-1"}), Filtered("south", {}, {"sub-1", "sub-2"})});
  CHECK_THAT(msg, Contains("'north'"));
  CHECK_THAT(msg, Contains("'south'"));

  // Different tags cannot keep them apart: one DER may carry both tags.
  VderDefinition fast = Vder("fast");
  fast.members.tags = {"fast"};
  VderDefinition slow = Vder("slow");
  slow.members.tags = {"slow"};
  BuildError({fast, slow});

  // Providers that share a value overlap even with other values listed.
  VderDefinition a = Vder("a");
  a.members.providers = {"prov-a", "prov-b"};
  VderDefinition b = Vder("b");
  b.members.providers = {"prov-b", "prov-c"};
  BuildError({a, b});

  // The same explicit DER in both.
  VderDefinition one = Vder("one");
  one.members.der_ids = {"bat-1", "bat-7"};
  VderDefinition two = Vder("two");
  two.members.der_ids = {"bat-7"};
  CHECK_THAT(BuildError({one, two}), Contains("bat-7"));
}

TEST_CASE("dispatchable virtual DERs with disjoint filters are accepted", "[unit][vder]") {
  // Different substations.
  BuildOk({Vder("root", {"x", "y"}), Filtered("x", {}, {"sub-1"}), Filtered("y", {}, {"sub-2"})});
  // Different types at one substation.
  BuildOk({Filtered("bat", {derms::v1::BATTERY}, {"sub-1"}),
           Filtered("gen", {derms::v1::PV, derms::v1::WIND}, {"sub-1"})});
  // Different providers or feeders, whatever else they share.
  VderDefinition a = Filtered("a", {derms::v1::BATTERY}, {"sub-1"});
  a.members.providers = {"prov-a"};
  VderDefinition b = Filtered("b", {derms::v1::BATTERY}, {"sub-1"});
  b.members.providers = {"prov-b"};
  BuildOk({a, b});
  VderDefinition f1 = Vder("f1");
  f1.members.feeders = {"feeder-1"};
  f1.members.tags = {"fast"};
  VderDefinition f2 = Vder("f2");
  f2.members.feeders = {"feeder-2"};
  f2.members.tags = {"fast"};
  BuildOk({f1, f2});
  // Views may overlap anything: they only aggregate.
  VderDefinition view = View("prov-a-view");
  view.members.providers = {"prov-a"};
  BuildOk({Filtered("all-sub-1", {}, {"sub-1"}), view, View("same", {})});
}

TEST_CASE("a virtual DER nested inside another may overlap it and the deepest claim wins",
          "[unit][vder]") {
  VderDefinition leaf = Filtered("fast", {derms::v1::BATTERY}, {"sub-1"});
  leaf.members.tags = {"fast"};
  VderFleet fleet(BuildOk({Filtered("north", {}, {"sub-1"}, {"storage"}),
                           Filtered("storage", {derms::v1::BATTERY}, {"sub-1"}, {"fast"}), leaf}));
  CHECK(fleet.Place(Birth("bat-fast", derms::v1::BATTERY, "sub-1", "prov-a", {"fast"})).empty());
  CHECK(fleet.Place(Birth("bat-slow", derms::v1::BATTERY, "sub-1")).empty());
  CHECK(fleet.Place(Birth("pv-1", derms::v1::PV, "sub-1")).empty());

  const int north = Index(fleet, "north"), storage = Index(fleet, "storage"),
            fast = Index(fleet, "fast");
  CHECK(fleet.claimant("bat-fast") == fast);
  CHECK(fleet.claimant("bat-slow") == storage);
  CHECK(fleet.claimant("pv-1") == north);
  CHECK(fleet.direct_members(fast) == Ids{"bat-fast"});
  CHECK(fleet.direct_members(storage) == Ids{"bat-slow"});
  CHECK(fleet.direct_members(north) == Ids{"pv-1"});
  CHECK(fleet.aggregate(fast).members_total == 1);
  CHECK(fleet.aggregate(storage).members_total == 2);
  CHECK(fleet.aggregate(north).members_total == 3);
  CHECK(fleet.tree().Path(fast) == "north/storage/fast");
}

TEST_CASE("malformed and duplicate virtual DER ids are rejected", "[unit][vder]") {
  for (const std::string& bad :
       {std::string(""), std::string("has space"), std::string("north/south"),
        std::string("dot.ted"), std::string(65, 'a'), std::string("caf\xc3\xa9")}) {
    INFO("'" << bad << "'");
    CHECK_THAT(BuildError({Vder(bad)}), Contains("'" + bad + "'"));
  }
  BuildOk({Vder(std::string(64, 'a')), Vder("A-z_09")});

  std::string msg = BuildError({Vder("root", {"twin"}), Vder("twin"), Vder("twin")});
  CHECK_THAT(msg, Contains("'twin'"));
  CHECK_THAT(msg, Contains("twice"));
}

TEST_CASE("two virtual DERs bound to one substation's grid are rejected naming both",
          "[unit][vder]") {
  VderDefinition x = Filtered("x", {}, {"sub-1"});
  x.grid_substation = "sub-1";
  VderDefinition y = Filtered("y", {}, {"sub-2"});
  y.grid_substation = "sub-1";
  std::string msg = BuildError({Vder("root", {"x", "y"}), x, y});
  CHECK_THAT(msg, Contains("'root/x'"));
  CHECK_THAT(msg, Contains("'root/y'"));
  CHECK_THAT(msg, Contains("'sub-1'"));

  // One binding each is fine, and ForGrid finds them.
  y.grid_substation = "sub-2";
  VderTree tree = BuildOk({Vder("root", {"x", "y"}), x, y});
  CHECK(tree.ForGrid("sub-1") == tree.Find("x"));
  CHECK(tree.ForGrid("sub-2") == tree.Find("y"));
  CHECK(tree.ForGrid("sub-3") == -1);
}

TEST_CASE("a grid binding needs a dispatchable virtual DER and a valid substation id",
          "[unit][vder]") {
  VderDefinition view = View("overview");
  view.grid_substation = "sub-1";
  std::string msg = BuildError({view});
  CHECK_THAT(msg, Contains("'overview'"));
  CHECK_THAT(msg, Contains("view"));

  VderDefinition bad = Vder("north");
  bad.grid_substation = "sub 1";
  msg = BuildError({bad});
  CHECK_THAT(msg, Contains("'north'"));
  CHECK_THAT(msg, Contains("'sub 1'"));
}

// --- Membership ----------------------------------------------------------------

TEST_CASE("a filter needs every kind given to match and any listed value within a kind",
          "[unit][vder]") {
  Selector s;
  s.der_types = {derms::v1::BATTERY, derms::v1::PV};
  s.substations = {"sub-1", "sub-2"};
  CHECK(s.HasFilter());
  CHECK(s.Matches(Birth("a", derms::v1::BATTERY, "sub-1")));
  CHECK(s.Matches(Birth("b", derms::v1::PV, "sub-2")));
  CHECK_FALSE(s.Matches(Birth("c", derms::v1::WIND, "sub-1")));     // type not listed
  CHECK_FALSE(s.Matches(Birth("d", derms::v1::BATTERY, "sub-3")));  // substation not listed

  s.providers = {"prov-a"};
  s.feeders = {"feeder-1", "feeder-2"};
  CHECK(s.Matches(Birth("e", derms::v1::BATTERY, "sub-1", "prov-a", {}, "feeder-2")));
  CHECK_FALSE(s.Matches(Birth("f", derms::v1::BATTERY, "sub-1", "prov-b", {}, "feeder-2")));
  CHECK_FALSE(s.Matches(Birth("g", derms::v1::BATTERY, "sub-1", "prov-a", {}, "feeder-3")));
}

TEST_CASE("a tag filter matches a DER carrying any of its tags", "[unit][vder]") {
  Selector s;
  s.tags = {"fast", "reserve"};
  CHECK(s.HasFilter());
  CHECK(s.Matches(Birth("a", derms::v1::BATTERY, "sub-1", "prov-a", {"slow", "reserve"})));
  CHECK(s.Matches(Birth("b", derms::v1::PV, "sub-9", "prov-z", {"fast"})));
  CHECK_FALSE(s.Matches(Birth("c", derms::v1::BATTERY, "sub-1", "prov-a", {"slow"})));
  CHECK_FALSE(s.Matches(Birth("d", derms::v1::BATTERY, "sub-1")));

  // Tags narrow the other kinds; they do not widen them.
  s.der_types = {derms::v1::BATTERY};
  CHECK_FALSE(s.Matches(Birth("e", derms::v1::PV, "sub-1", "prov-a", {"fast"})));
}

TEST_CASE("explicit der_ids are members whatever the filter says", "[unit][vder]") {
  Selector s;
  s.der_ids = {"bat-7"};
  CHECK_FALSE(s.HasFilter());
  CHECK(s.Matches(Birth("bat-7", derms::v1::BATTERY, "sub-1")));
  // With no filter, only the listed DERs.
  CHECK_FALSE(s.Matches(Birth("bat-8", derms::v1::BATTERY, "sub-1")));

  s.der_types = {derms::v1::PV};
  CHECK(s.Matches(Birth("bat-7", derms::v1::BATTERY, "sub-1")));
  CHECK(s.Matches(Birth("pv-1", derms::v1::PV, "sub-1")));
  CHECK_FALSE(s.Matches(Birth("bat-8", derms::v1::BATTERY, "sub-1")));

  // An empty selector holds nothing.
  CHECK_FALSE(Selector{}.Matches(Birth("bat-7", derms::v1::BATTERY, "sub-1")));
}

TEST_CASE("a DER listed by one virtual DER and matched by another's filter goes to the first",
          "[unit][vder]") {
  VderDefinition listed = Vder("listed");
  listed.members.der_ids = {"bat-7"};
  VderDefinition batteries = Filtered("batteries", {derms::v1::BATTERY}, {});
  // Explicit ids against a filter depend on the DER's birth: not a config error.
  for (bool listed_first : {true, false}) {
    INFO("listed first: " << listed_first);
    std::vector<VderDefinition> defs = {Vder("root", {"listed", "batteries"})};
    if (listed_first) {
      defs.push_back(listed);
      defs.push_back(batteries);
    } else {
      defs.push_back(batteries);
      defs.push_back(listed);
    }
    VderFleet fleet(BuildOk(defs));
    std::string conflict = fleet.Place(Birth("bat-7", derms::v1::BATTERY, "sub-1"));
    CHECK_THAT(conflict, Contains("bat-7"));
    CHECK_THAT(conflict, Contains("root/listed"));
    CHECK_THAT(conflict, Contains("root/batteries"));
    const int first = Index(fleet, listed_first ? "listed" : "batteries");
    const int second = Index(fleet, listed_first ? "batteries" : "listed");
    CHECK(fleet.claimant("bat-7") == first);
    CHECK(fleet.direct_members(first) == Ids{"bat-7"});
    CHECK(fleet.direct_members(second).empty());
    CHECK(fleet.aggregate(second).members_total == 0);
    // Counted once above them.
    CHECK(fleet.aggregate(Index(fleet, "root")).members_total == 1);

    // Another battery is only the filter's: no conflict.
    CHECK(fleet.Place(Birth("bat-8", derms::v1::BATTERY, "sub-1")).empty());
    CHECK(fleet.claimant("bat-8") == Index(fleet, "batteries"));
  }
}

TEST_CASE("views hold the DERs they match and every ancestor contains them", "[unit][vder]") {
  VderDefinition prov_a = View("prov-a");
  prov_a.members.providers = {"prov-a"};
  VderFleet fleet(
      BuildOk({Vder("root", {"x", "y"}), Filtered("x", {}, {"sub-1"}), Filtered("y", {}, {"sub-2"}),
               prov_a, View("providers", {"prov-a"}), View("everything", {"root"})}));
  CHECK(fleet.Place(Birth("d1", derms::v1::BATTERY, "sub-1", "prov-a")).empty());
  CHECK(fleet.Place(Birth("d2", derms::v1::PV, "sub-2", "prov-b")).empty());
  CHECK(fleet.Place(Birth("d3", derms::v1::WIND, "sub-2", "prov-a")).empty());
  fleet.Update("d1", Online(3));
  fleet.Update("d2", Online(5));
  fleet.Update("d3", Online(7));

  // The view aggregates; the dispatchable virtual DER dispatches.
  CHECK(fleet.claimant("d1") == Index(fleet, "x"));
  CHECK(fleet.claimant("d3") == Index(fleet, "y"));
  const int view = Index(fleet, "prov-a");
  CHECK(fleet.direct_members(view) == Ids{"d1", "d3"});
  CHECK(fleet.aggregate(view).members_total == 2);
  CHECK(fleet.aggregate(view).output_kw == Approx(10));
  const Aggregate& providers = fleet.aggregate(Index(fleet, "providers"));
  CHECK(providers.members_total == 2);
  CHECK(providers.output_kw == Approx(10));
  CHECK(fleet.direct_members(Index(fleet, "providers")).empty());
  // A view over the dispatchable tree contains everything in it.
  const Aggregate& everything = fleet.aggregate(Index(fleet, "everything"));
  CHECK(everything.members_total == 3);
  CHECK(everything.output_kw == Approx(15));

  // A DER only a view matches is still dispatched, by its substation's
  // implicit virtual DER, and the view still holds it.
  CHECK(fleet.Place(Birth("d4", derms::v1::PV, "sub-9", "prov-a")).empty());
  CHECK(fleet.claimant("d4") == Index(fleet, "sub-9"));
  CHECK(fleet.direct_members(view) == Ids{"d1", "d3", "d4"});
}

TEST_CASE("an unclaimed DER at an unbound substation gets an implicit virtual DER of its own",
          "[unit][vder]") {
  VderDefinition x = Filtered("x", {derms::v1::BATTERY}, {"sub-1"});
  x.grid_substation = "sub-1";
  VderFleet fleet(BuildOk({Vder("root", {"x"}), x}));
  const size_t configured = fleet.tree().size();

  CHECK(fleet.Place(Birth("pv-1", derms::v1::PV, "sub-7")).empty());
  REQUIRE(fleet.tree().size() == configured + 1);
  const int implicit = Index(fleet, "sub-7");
  const VderDefinition& def = fleet.tree().definition(implicit);
  CHECK(def.implicit);
  CHECK(def.dispatchable);
  CHECK(def.grid_substation == "sub-7");
  CHECK(fleet.tree().ForGrid("sub-7") == implicit);
  CHECK(fleet.claimant("pv-1") == implicit);
  CHECK(fleet.direct_members(implicit) == Ids{"pv-1"});
  CHECK(fleet.aggregate(implicit).members_total == 1);

  // The next DER there joins it rather than making another.
  CHECK(fleet.Place(Birth("wind-1", derms::v1::WIND, "sub-7")).empty());
  CHECK(fleet.tree().size() == configured + 1);
  CHECK(fleet.claimant("wind-1") == implicit);
  CHECK(fleet.aggregate(implicit).members_total == 2);

  // A claimed DER makes none, even at an unbound substation.
  CHECK(fleet.Place(Birth("bat-2", derms::v1::BATTERY, "sub-1")).empty());
  VderDefinition anywhere = Filtered("anywhere", {derms::v1::BATTERY}, {});
  VderFleet roaming(BuildOk({anywhere}));
  CHECK(roaming.Place(Birth("bat-3", derms::v1::BATTERY, "sub-5")).empty());
  CHECK(roaming.tree().size() == 1);
  CHECK(roaming.claimant("bat-3") == Index(roaming, "anywhere"));

  // sub-1's grid already drives x: a DER there that x does not claim is not
  // dispatched, and no second workflow is made for sub-1.
  CHECK(fleet.Place(Birth("pv-2", derms::v1::PV, "sub-1")).empty());
  CHECK(fleet.tree().size() == configured + 1);
  CHECK(fleet.claimant("pv-2") == -1);
  CHECK(fleet.tree().Find("sub-1") == -1);
  CHECK(fleet.tree().ForGrid("sub-1") == Index(fleet, "x"));
  CHECK(fleet.direct_members(Index(fleet, "x")) == Ids{"bat-2"});
  CHECK(fleet.aggregate(Index(fleet, "root")).members_total == 1);

  // No substation id, no implicit virtual DER.
  CHECK(fleet.Place(Birth("pv-3", derms::v1::PV, "")).empty());
  CHECK(fleet.claimant("pv-3") == -1);
  CHECK(fleet.tree().size() == configured + 1);
}

TEST_CASE("a rebirth at another substation moves the DER's contribution", "[unit][vder]") {
  VderFleet fleet(BuildOk(
      {Vder("root", {"x", "y"}), Filtered("x", {}, {"sub-1"}), Filtered("y", {}, {"sub-2"})}));
  const int root = Index(fleet, "root"), x = Index(fleet, "x"), y = Index(fleet, "y");
  CHECK(fleet.Place(Birth("bat-1", derms::v1::BATTERY, "sub-1")).empty());
  fleet.Update("bat-1", Online(4, 6, 10, 20));
  CHECK(fleet.aggregate(x).output_kw == Approx(4));
  CHECK(fleet.aggregate(x).energy_available_kwh == Approx(20));
  const uint64_t x_before = fleet.version(x), y_before = fleet.version(y);

  CHECK(fleet.Place(Birth("bat-1", derms::v1::BATTERY, "sub-2")).empty());
  CHECK(fleet.claimant("bat-1") == y);
  CHECK(fleet.direct_members(x).empty());
  CHECK(fleet.direct_members(y) == Ids{"bat-1"});
  const Aggregate& ax = fleet.aggregate(x);
  CHECK(ax.members_total == 0);
  CHECK(ax.members_online == 0);
  CHECK(ax.output_kw == Approx(0).margin(1e-9));
  CHECK(ax.available_discharge_kw == Approx(0).margin(1e-9));
  CHECK(ax.available_charge_kw == Approx(0).margin(1e-9));
  CHECK(ax.energy_available_kwh == Approx(0).margin(1e-9));
  // The newest telemetry travels with the DER until the next one arrives.
  const Aggregate& ay = fleet.aggregate(y);
  CHECK(ay.members_total == 1);
  CHECK(ay.members_online == 1);
  CHECK(ay.output_kw == Approx(4));
  CHECK(ay.available_discharge_kw == Approx(6));
  CHECK(ay.available_charge_kw == Approx(10));
  CHECK(ay.energy_available_kwh == Approx(20));
  CHECK(fleet.version(x) > x_before);
  CHECK(fleet.version(y) > y_before);
  // Counted once at the root, before and after.
  CHECK(fleet.aggregate(root).members_total == 1);
  CHECK(fleet.aggregate(root).output_kw == Approx(4));

  // The same birth again changes nothing.
  CHECK(fleet.Place(Birth("bat-1", derms::v1::BATTERY, "sub-2")).empty());
  CHECK(fleet.aggregate(y).members_total == 1);
  CHECK(fleet.direct_members(y) == Ids{"bat-1"});
  CHECK(fleet.aggregate(root).members_total == 1);

  // Moving to an unconfigured substation hands it to that substation.
  CHECK(fleet.Place(Birth("bat-1", derms::v1::BATTERY, "sub-3")).empty());
  const int sub3 = Index(fleet, "sub-3");
  CHECK(fleet.claimant("bat-1") == sub3);
  CHECK(fleet.aggregate(sub3).output_kw == Approx(4));
  CHECK(fleet.aggregate(y).members_total == 0);
  CHECK(fleet.aggregate(root).members_total == 0);
}

// --- Aggregates ----------------------------------------------------------------

TEST_CASE("aggregates count every member but sum only online ones", "[unit][vder]") {
  VderFleet fleet(BuildOk(
      {Vder("root", {"x", "y"}), Filtered("x", {}, {"sub-1"}), Filtered("y", {}, {"sub-2"})}));
  const int x = Index(fleet, "x"), y = Index(fleet, "y");
  CHECK(fleet.Place(Birth("a", derms::v1::BATTERY, "sub-1")).empty());
  CHECK(fleet.Place(Birth("b", derms::v1::BATTERY, "sub-1")).empty());
  // Placed but not heard from: counted, not online.
  CHECK(fleet.aggregate(x).members_total == 2);
  CHECK(fleet.aggregate(x).members_online == 0);

  fleet.Update("a", Online(5, 1, 2, 3));
  Contribution offline = Online(7, 1, 1, 1);
  offline.online = false;
  fleet.Update("b", offline);
  CHECK(fleet.aggregate(x).members_online == 1);
  CHECK(fleet.aggregate(x).output_kw == Approx(5));
  CHECK(fleet.aggregate(x).available_charge_kw == Approx(2));

  const uint64_t x_before = fleet.version(x), y_before = fleet.version(y);
  fleet.Update("b", Online(7, 1, 1, 1));
  CHECK(fleet.aggregate(x).members_online == 2);
  CHECK(fleet.aggregate(x).output_kw == Approx(12));
  CHECK(fleet.version(x) > x_before);
  CHECK(fleet.version(y) == y_before);  // nothing of y's changed

  fleet.Update("a", Contribution{});
  CHECK(fleet.aggregate(x).members_total == 2);
  CHECK(fleet.aggregate(x).members_online == 1);
  CHECK(fleet.aggregate(x).output_kw == Approx(7));
  CHECK(fleet.aggregate(x).energy_available_kwh == Approx(1));
}

namespace {

constexpr DerType kTypes[] = {derms::v1::BATTERY,       derms::v1::PV,   derms::v1::EV_CHARGER,
                              derms::v1::FLEXIBLE_LOAD, derms::v1::WIND, derms::v1::GENERATOR};

// A random configuration and, beside it, what it means written out plainly,
// so membership can be worked out without VderTree.
struct RandomTree {
  std::vector<VderDefinition> definitions;
  std::map<std::string, std::vector<std::string>> parents;  // id -> parents' ids
  // Per substation, the dispatchable virtual DERs that claim there, deepest
  // first: the types they take (all when empty) and their id.
  std::map<std::string, std::vector<std::pair<std::vector<DerType>, std::string>>> claims;
  std::set<std::string> bound;  // substations whose grid a virtual DER is bound to
  std::vector<std::string> substations;
  std::vector<std::string> providers;
  std::map<std::string, std::string> provider_view;  // provider -> view id
};

// A root with 2-4 children, each with 0-3 grandchildren. A child owns one
// substation: childless, it takes some or all types there; with grandchildren,
// they split some of the types and the child itself may take the rest. Some
// children are bound to their substation's grid; views collect providers (and
// sometimes one dispatchable child); two substations have no virtual DER.
RandomTree MakeRandomTree(std::mt19937& rng) {
  auto coin = [&rng] { return std::uniform_int_distribution<int>(0, 1)(rng) == 1; };
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  RandomTree t;
  VderDefinition root = Vder("root");
  std::vector<VderDefinition> children, grandchildren;
  const int nc = uniform(2, 4);
  for (int i = 0; i < nc; ++i) {
    const std::string sub = "sub-" + std::to_string(i);
    t.substations.push_back(sub);
    VderDefinition child = Vder("c" + std::to_string(i));
    root.children.push_back(child.id);
    t.parents[child.id].push_back(root.id);
    std::vector<DerType> types(std::begin(kTypes), std::end(kTypes));
    std::shuffle(types.begin(), types.end(), rng);
    const int ng = uniform(0, 3);
    if (ng == 0) {
      child.members.substations = {sub};
      if (coin()) child.members.der_types.assign(types.begin(), types.begin() + uniform(1, 5));
      t.claims[sub].push_back({child.members.der_types, child.id});
    } else {
      size_t next = 0;
      for (int j = 0; j < ng; ++j) {
        // Leave at least one type for each grandchild still to come.
        const int room = static_cast<int>(types.size() - next) - (ng - j - 1);
        const int take = uniform(1, room);
        VderDefinition g = Filtered(
            child.id + "-g" + std::to_string(j),
            std::vector<DerType>(types.begin() + next, types.begin() + next + take), {sub});
        next += take;
        child.children.push_back(g.id);
        t.parents[g.id].push_back(child.id);
        t.claims[sub].push_back({g.members.der_types, g.id});
        grandchildren.push_back(g);
      }
      if (coin()) {
        child.members.substations = {sub};  // the types its children leave
        t.claims[sub].push_back({{}, child.id});
      }
    }
    if (coin()) {
      child.grid_substation = sub;
      t.bound.insert(sub);
    }
    children.push_back(child);
  }
  t.substations.push_back("sub-x0");
  t.substations.push_back("sub-x1");

  VderDefinition views = View("views");
  std::vector<VderDefinition> provider_views;
  for (int k = 0; k < 3; ++k) {
    const std::string provider = "prov-" + std::to_string(k);
    t.providers.push_back(provider);
    if (uniform(0, 2) == 0) continue;
    VderDefinition view = View("view-" + provider);
    view.members.providers = {provider};
    views.children.push_back(view.id);
    t.parents[view.id].push_back(views.id);
    t.provider_view[provider] = view.id;
    provider_views.push_back(view);
  }
  if (coin()) {
    views.children.push_back("c0");
    t.parents["c0"].push_back(views.id);
  }

  // Definition order is shuffled: the rules must not depend on it.
  t.definitions = {root, views};
  for (auto* list : {&children, &grandchildren, &provider_views}) {
    t.definitions.insert(t.definitions.end(), list->begin(), list->end());
  }
  std::shuffle(t.definitions.begin(), t.definitions.end(), rng);
  return t;
}

// The id of the virtual DER that should dispatch this DER ("" for none).
std::string ExpectedClaimant(const RandomTree& t, const DerBirth& der) {
  auto it = t.claims.find(der.substation_id());
  if (it != t.claims.end()) {
    for (const auto& [types, id] : it->second) {
      if (types.empty() || std::find(types.begin(), types.end(), der.der_type()) != types.end()) {
        return id;
      }
    }
  }
  // Unclaimed: the substation's own implicit virtual DER, unless its grid is
  // already bound to a configured one.
  return t.bound.count(der.substation_id()) ? "" : der.substation_id();
}

// Every virtual DER (by id) whose aggregate should include this DER, and the
// ones holding it directly.
void ExpectedPlace(const RandomTree& t, const DerBirth& der, std::set<std::string>* containing,
                   std::set<std::string>* direct) {
  std::function<void(const std::string&)> up = [&](const std::string& id) {
    if (!containing->insert(id).second) return;
    auto it = t.parents.find(id);
    if (it == t.parents.end()) return;
    for (const auto& p : it->second) up(p);
  };
  const std::string claimant = ExpectedClaimant(t, der);
  if (!claimant.empty()) {
    direct->insert(claimant);
    up(claimant);
  }
  auto view = t.provider_view.find(der.provider_id());
  if (view != t.provider_view.end()) {
    direct->insert(view->second);
    up(view->second);
  }
}

struct ModelDer {
  DerBirth birth;
  Contribution last;
};

// The first difference between the fleet and a recount from scratch, or "".
std::string FleetBreach(const RandomTree& t, const std::map<std::string, ModelDer>& ders,
                        const VderFleet& fleet) {
  std::ostringstream out;
  out.precision(17);
  std::map<std::string, Aggregate> want;
  // Sum of the magnitudes each virtual DER adds up: the fleet may store a
  // contribution as a float, which rounds each value by up to 2^-24 of it.
  std::map<std::string, double> magnitude;
  std::map<std::string, Ids> want_direct;
  for (const auto& [id, der] : ders) {
    std::set<std::string> containing, direct;
    ExpectedPlace(t, der.birth, &containing, &direct);
    const std::string claimant = ExpectedClaimant(t, der.birth);
    const int want_claimant = claimant.empty() ? -1 : fleet.tree().Find(claimant);
    if (fleet.claimant(id) != want_claimant) {
      out << "der '" << id << "' claimed by " << fleet.claimant(id) << ", not '" << claimant << "'";
      return out.str();
    }
    for (const auto& v : direct) want_direct[v].push_back(id);  // ids visited in order
    for (const auto& v : containing) {
      Aggregate& a = want[v];
      ++a.members_total;
      if (!der.last.online) continue;
      ++a.members_online;
      a.output_kw += der.last.output_kw;
      a.available_discharge_kw += der.last.available_discharge_kw;
      a.available_charge_kw += der.last.available_charge_kw;
      a.energy_available_kwh += der.last.energy_available_kwh;
      magnitude[v] += std::abs(der.last.output_kw) + der.last.available_discharge_kw +
                      der.last.available_charge_kw + der.last.energy_available_kwh;
    }
  }
  for (const auto& [id, a] : want) {
    if (fleet.tree().Find(id) < 0) return "vder '" + id + "' missing from the tree";
  }
  for (size_t v = 0; v < fleet.tree().size(); ++v) {
    const std::string& id = fleet.tree().definition(static_cast<int>(v)).id;
    const Aggregate& got = fleet.aggregate(static_cast<int>(v));
    const Aggregate& w = want[id];
    if (got.members_total != w.members_total || got.members_online != w.members_online) {
      out << "vder '" << id << "' members " << got.members_total << "/" << got.members_online
          << " online, recount " << w.members_total << "/" << w.members_online;
      return out.str();
    }
    const std::pair<double, double> sums[] = {
        {got.output_kw, w.output_kw},
        {got.available_discharge_kw, w.available_discharge_kw},
        {got.available_charge_kw, w.available_charge_kw},
        {got.energy_available_kwh, w.energy_available_kwh}};
    const double tol = 1e-6 + magnitude[id] * std::ldexp(1.0, -24);
    for (const auto& [g, r] : sums) {
      if (std::abs(g - r) > tol) {
        out << "vder '" << id << "' sum " << g << ", recount " << r;
        return out.str();
      }
    }
    if (fleet.direct_members(static_cast<int>(v)) != want_direct[id]) {
      out << "vder '" << id << "' direct members differ ("
          << fleet.direct_members(static_cast<int>(v)).size() << " vs " << want_direct[id].size()
          << ")";
      return out.str();
    }
  }
  return "";
}

DerBirth RandomBirth(const RandomTree& t, const std::string& id, std::mt19937& rng) {
  auto pick = [&rng](const auto& list) {
    return list[std::uniform_int_distribution<size_t>(0, std::size(list) - 1)(rng)];
  };
  return Birth(id, pick(kTypes), pick(t.substations), pick(t.providers));
}

Contribution RandomContribution(std::mt19937& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Contribution c;
  c.online = unit(rng) < 0.7;
  c.output_kw = 100 * unit(rng) - 50;
  c.available_discharge_kw = 50 * unit(rng);
  c.available_charge_kw = 50 * unit(rng);
  c.energy_available_kwh = 200 * unit(rng);
  return c;
}

}  // namespace

TEST_CASE("incremental aggregates match a recount from scratch on random trees and fleets",
          "[unit][vder]") {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    RandomTree t = MakeRandomTree(rng);
    VderFleet fleet(BuildOk(t.definitions));
    std::map<std::string, ModelDer> ders;
    std::vector<std::string> ids;
    const int n = std::uniform_int_distribution<int>(200, 400)(rng);
    for (int i = 0; i < n; ++i) {
      char id[16];
      std::snprintf(id, sizeof id, "der-%04d", i);
      ids.push_back(id);
      ModelDer d{RandomBirth(t, id, rng), {}};
      CHECK(fleet.Place(d.birth).empty());  // the generated filters never overlap
      ders[id] = d;
    }
    REQUIRE(FleetBreach(t, ders, fleet) == "");

    std::uniform_int_distribution<size_t> any_der(0, ids.size() - 1);
    std::string version_breach;
    for (int event = 1; event <= 4000; ++event) {
      const std::string& id = ids[any_der(rng)];
      ModelDer& d = ders[id];
      if (std::uniform_int_distribution<int>(0, 19)(rng) < 2) {
        // A rebirth, most likely somewhere else.
        d.birth = RandomBirth(t, id, rng);
        CHECK(fleet.Place(d.birth).empty());
      } else {
        std::vector<uint64_t> before(fleet.tree().size());
        for (size_t v = 0; v < before.size(); ++v) before[v] = fleet.version(static_cast<int>(v));
        d.last = RandomContribution(rng);
        fleet.Update(id, d.last);
        std::set<std::string> containing, direct;
        ExpectedPlace(t, d.birth, &containing, &direct);
        for (size_t v = 0; v < before.size() && version_breach.empty(); ++v) {
          const std::string& vid = fleet.tree().definition(static_cast<int>(v)).id;
          const bool changed = fleet.version(static_cast<int>(v)) != before[v];
          if (changed != (containing.count(vid) > 0)) {
            version_breach = "vder '" + vid + "' version " + (changed ? "bumped" : "kept") +
                             " on an update of der '" + id + "'";
          }
        }
      }
      if (event % 500 == 0) {
        INFO("after event " << event);
        REQUIRE(FleetBreach(t, ders, fleet) == "");
      }
    }
    CHECK(version_breach == "");
  }
}
