#include "feeder/scenario.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/config.h"
#include "feeder/dss_parser.h"

namespace derms::feeder {
namespace {

std::string Resolve(const std::string& base_file, const std::string& p) {
  if (p.empty()) return p;
  std::filesystem::path path(p);
  if (path.is_absolute()) return p;
  // Relative to the file's real directory: ".." follows symlinks as the
  // kernel does (a lexical ".." would not).
  std::filesystem::path dir = std::filesystem::path(base_file).parent_path();
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(dir.empty() ? "." : dir, ec);
  return ((ec ? dir : real) / path).lexically_normal().string();
}

}  // namespace

StatusOr<Scenario> LoadScenario(const std::string& path) {
  auto table = config::ParseFile(path);
  if (!table.ok()) return table.status();
  const toml::table& t = *table;
  Status s = config::CheckKnownKeys(
      t, path,
      {"feeder", "source_pu", "load_mult", "pv_mult", "v_min_pu", "v_max_pu", "pv", "area_by",
       "capacitors", "taps.*", "day.load_shape", "day.pv_shape", "day.step_h"});
  if (!s.ok()) return s;
  Scenario sc;
  for (auto [key, dst] : {std::pair{"source_pu", &sc.source_pu},
                          {"load_mult", &sc.load_mult},
                          {"pv_mult", &sc.pv_mult},
                          {"v_min_pu", &sc.v_min_pu},
                          {"v_max_pu", &sc.v_max_pu},
                          {"day.step_h", &sc.step_h}}) {
    s = config::Get(t, path, key, dst);
    if (!s.ok()) return s;
    if (!std::isfinite(*dst) || *dst < 0) {
      return Status::Error("config_error",
                           fmt::format("{}: {} {}: must be a number >= 0", path, key, *dst));
    }
  }
  for (auto [key, dst] : {std::pair{"feeder", &sc.feeder_dir},
                          {"pv", &sc.pv},
                          {"area_by", &sc.area_by},
                          {"day.load_shape", &sc.load_shape},
                          {"day.pv_shape", &sc.pv_shape}}) {
    s = config::Get(t, path, key, dst);
    if (!s.ok()) return s;
  }
  s = config::Get(t, path, "capacitors", &sc.capacitors);
  if (!s.ok()) return s;
  if (sc.feeder_dir.empty()) {
    return Status::Error("config_error", fmt::format("{}: feeder: required (a directory)", path));
  }
  if (!(sc.v_min_pu > 0 && sc.v_min_pu < sc.v_max_pu && sc.v_max_pu < 2)) {
    return Status::Error("config_error", fmt::format("{}: v_min_pu {} and v_max_pu {}: need 0 < "
                                                     "v_min_pu < v_max_pu < 2",
                                                     path, sc.v_min_pu, sc.v_max_pu));
  }
  if (sc.source_pu <= 0.5 || sc.source_pu >= 1.5) {
    return Status::Error(
        "config_error", fmt::format("{}: source_pu {}: must be in (0.5, 1.5)", path, sc.source_pu));
  }
  if (sc.pv != "every_load") {
    return Status::Error("config_error",
                         fmt::format("{}: pv '{}': must be every_load", path, sc.pv));
  }
  if (sc.area_by != "zone" && sc.area_by != "bus") {
    return Status::Error("config_error",
                         fmt::format("{}: area_by '{}': must be zone or bus", path, sc.area_by));
  }
  if (const toml::table* taps = t["taps"].as_table()) {
    for (const auto& [k, v] : *taps) {
      auto step = v.value_exact<int64_t>();
      if (!step || *step < -16 || *step > 16) {
        return Status::Error("config_error", fmt::format("{}: taps.{}: must be an integer step "
                                                         "in [-16, 16]",
                                                         path, k.str()));
      }
      sc.taps.emplace_back(std::string(k.str()), static_cast<int>(*step));
    }
  }
  if (sc.step_h <= 0) sc.step_h = 0.25;
  sc.feeder_dir = Resolve(path, sc.feeder_dir);
  sc.load_shape = Resolve(path, sc.load_shape);
  sc.pv_shape = Resolve(path, sc.pv_shape);
  return sc;
}

StatusOr<std::vector<double>> ReadShape(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error("invalid_argument", fmt::format("cannot read shape '{}'", path));
  std::vector<double> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    char* end = nullptr;
    double v = std::strtod(line.c_str(), &end);
    while (end && (*end == ' ' || *end == '\t')) ++end;
    if (end == line.c_str() || *end != '\0' || !std::isfinite(v) || v < 0) {
      return Status::Error("invalid_argument",
                           fmt::format("{}:{}: '{}': must be a number >= 0", path, n, line));
    }
    out.push_back(v);
  }
  if (out.empty()) return Status::Error("invalid_argument", fmt::format("{}: no values", path));
  return out;
}

std::vector<std::string> BusZones(const FeederModel& model) {
  std::vector<std::string> zone(model.buses.size());
  zone[0] = model.buses[0].name;
  for (const Branch& br : model.branches) {  // breadth-first: parents first
    bool boundary = br.kind != BranchKind::kLine;
    zone[br.to_bus] = boundary ? model.buses[br.to_bus].name : zone[br.from_bus];
  }
  return zone;
}

void PlacePvAtLoads(FeederModel* model, const std::string& area_by) {
  model->pvs.clear();
  std::vector<std::string> zones = BusZones(*model);
  // Loads of several parts (three-phase, delta): one PV per phase.
  std::vector<std::pair<std::string, int>> seen;  // (load, phase) -> pv index
  for (const LoadPart& l : model->loads) {
    std::vector<std::pair<int, double>> shares;
    if (l.connection == Connection::kWye) {
      shares = {{l.phase, l.kw}};
    } else {
      shares = {{l.phase, l.kw / 2}, {l.phase2, l.kw / 2}};
    }
    for (auto [phase, kw] : shares) {
      auto it = std::find_if(seen.begin(), seen.end(), [&](const auto& s) {
        return s.first == l.load && model->pvs[s.second].phase == phase;
      });
      if (it != seen.end()) {
        model->pvs[it->second].rated_kw += kw;
        continue;
      }
      Pv pv;
      pv.bus = l.bus;
      pv.phase = phase;
      pv.rated_kw = kw;
      pv.area = area_by == "bus" ? model->buses[l.bus].name : zones[l.bus];
      seen.emplace_back(l.load, static_cast<int>(model->pvs.size()));
      model->pvs.push_back(pv);
    }
  }
  // Ids: "pv-LOAD" for a single-phase load, "pv-LOAD-PHASE" otherwise.
  for (size_t k = 0; k < model->pvs.size(); ++k) {
    const std::string& load = seen[k].first;
    int parts = 0;
    for (const auto& s : seen) parts += s.first == load;
    model->pvs[k].id =
        parts == 1 ? "pv-" + load : fmt::format("pv-{}-{}", load, model->pvs[k].phase + 1);
  }
}

StatusOr<FeederModel> LoadScenarioFeeder(const Scenario& scenario) {
  auto master = FindMasterFile(scenario.feeder_dir);
  if (!master.ok()) return master.status();
  auto model = ParseDssFile(*master);
  if (!model.ok()) return model.status();
  FeederModel m = std::move(model).value();
  for (const auto& [name, step] : scenario.taps) {
    if (!m.SetTap(name, step)) {
      return Status::Error("config_error", fmt::format("taps.{}: no regulator of that name in '{}'",
                                                       name, scenario.feeder_dir));
    }
  }
  m.source_pu = scenario.source_pu;
  if (!scenario.capacitors) m.capacitors.clear();
  PlacePvAtLoads(&m, scenario.area_by);
  return m;
}

StatusOr<DayResult> RunDay(const FeederModel& model, const Scenario& scenario,
                           FairnessPolicy policy) {
  if (scenario.load_shape.empty() || scenario.pv_shape.empty()) {
    return Status::Error("config_error", "the scenario has no [day] load_shape and pv_shape");
  }
  auto load = ReadShape(scenario.load_shape);
  if (!load.ok()) return load.status();
  auto pv = ReadShape(scenario.pv_shape);
  if (!pv.ok()) return pv.status();
  if (load->size() != pv->size()) {
    return Status::Error("invalid_argument",
                         fmt::format("load shape has {} values, PV shape {}: they must match",
                                     load->size(), pv->size()));
  }
  DayResult day;
  day.policy = policy;
  for (size_t t = 0; t < load->size(); ++t) {
    CurtailmentRequest req;
    req.policy = policy;
    req.v_min_pu = scenario.v_min_pu;
    req.v_max_pu = scenario.v_max_pu;
    req.load_mult = scenario.load_mult * (*load)[t];
    req.source_pu = scenario.source_pu;
    for (const Pv& p : model.pvs) req.available_kw.push_back(p.rated_kw * (*pv)[t]);
    auto r = Curtail(model, req);
    if (!r.ok())
      return Status::Error(r.status().code(), fmt::format("step {}: {}", t, r.status().message()));
    DayStep s;
    s.step = static_cast<int>(t);
    s.load_mult = req.load_mult;
    s.pv_mult = (*pv)[t];
    s.available_kw = r->available_kw;
    s.curtailed_kw = r->curtailed_kw;
    s.max_before_pu = r->max_before.v_pu;
    s.max_after_pu = r->max_after.v_pu;
    s.max_ratio = r->max_ratio;
    s.min_ratio = r->min_ratio;
    s.jain_index = r->jain_index;
    s.iterations = r->iterations;
    s.feasible = r->feasible;
    s.reason = r->reason;
    day.curtailed_kwh += s.curtailed_kw * scenario.step_h;
    day.available_kwh += s.available_kw * scenario.step_h;
    if (s.curtailed_kw > 0) ++day.steps_curtailed;
    if (!s.feasible) ++day.steps_infeasible;
    day.max_iterations = std::max(day.max_iterations, s.iterations);
    day.max_ratio = std::max(day.max_ratio, s.max_ratio);
    if (s.feasible) day.max_after_pu = std::max(day.max_after_pu, s.max_after_pu);
    if (s.curtailed_kw > day.peak_curtailed_kw) {
      day.peak_curtailed_kw = s.curtailed_kw;
      day.min_ratio_at_peak = s.min_ratio;
      day.jain_at_peak = s.jain_index;
    }
    day.steps.push_back(std::move(s));
  }
  return day;
}

}  // namespace derms::feeder
