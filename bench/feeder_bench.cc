// derms-feeder-bench: the fair-curtailment linear program on the IEEE
// 123-bus over-voltage scenario, built and solved by the C++ path (GLPK,
// dual simplex from the tree's basis) beside the same program built
// independently in Python and solved by SciPy's HiGHS
// (bench/python_curtail.py), for each policy. Both start from the same
// linearised feeder (exported as JSON for Python) and time building the
// program plus solving it; the objectives must agree to 1e-6 (relative)
// or the run fails. Prints one JSON line per policy and a total line:
//   {"name": "curtail", "policy": ..., "ours_ms": ..., "py_ms": ..., ...}
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "feeder/curtailment.h"
#include "feeder/lindistflow.h"
#include "feeder/power_flow.h"
#include "feeder/scenario.h"

namespace {

using namespace derms::feeder;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string Triple(const PhaseValues& v) {
  return fmt::format("[{:.17g},{:.17g},{:.17g}]", v[0], v[1], v[2]);
}

std::string NetworkJson(const FeederModel& model, const LinearModel& lm,
                        const CurtailmentRequest& req, const std::vector<PhaseValues>& offset) {
  std::string out = fmt::format(
      "{{\"policy\":\"{}\",\"per_phase_base_kva\":{:.17g},\"v0_sq\":{:.17g},\"v_min_pu\":{:.17g},"
      "\"v_max_pu\":{:.17g},\"margin_pu\":{:.17g},\"buses\":[",
      PolicyName(req.policy), kPerPhaseBaseKva, lm.v0_sq, req.v_min_pu, req.v_max_pu,
      req.margin_pu);
  for (size_t b = 0; b < model.buses.size(); ++b) {
    const auto& ph = lm.bus_phases[b];
    out += fmt::format("{}{{\"name\":\"{}\",\"phases\":[{},{},{}],\"p_load\":{},\"offset\":{}}}",
                       b ? "," : "", model.buses[b].name, int(ph[0]), int(ph[1]), int(ph[2]),
                       Triple(lm.p_load[b]), Triple(offset[b]));
  }
  out += "],\"branches\":[";
  for (size_t k = 0; k < lm.rows.size(); ++k) {
    const auto& r = lm.rows[k];
    auto mat = [](const double m[3][3]) {
      return fmt::format("[{},{},{}]", Triple({m[0][0], m[0][1], m[0][2]}),
                         Triple({m[1][0], m[1][1], m[1][2]}), Triple({m[2][0], m[2][1], m[2][2]}));
    };
    out += fmt::format(
        "{}{{\"from\":{},\"to\":{},\"phases\":[{},{},{}],\"regulator\":{},\"ratio_sq\":{},"
        "\"mp\":{},\"mq\":{},\"q_flow\":{}}}",
        k ? "," : "", r.from_bus, r.to_bus, int(r.phases[0]), int(r.phases[1]), int(r.phases[2]),
        r.regulator ? "true" : "false", Triple(r.ratio_sq), mat(r.mp), mat(r.mq), Triple(r.q_flow));
  }
  out += "],\"pvs\":[";
  for (size_t k = 0; k < model.pvs.size(); ++k) {
    const auto& pv = model.pvs[k];
    out += fmt::format(
        "{}{{\"id\":\"{}\",\"bus\":{},\"phase\":{},\"available_kw\":{:.17g},"
        "\"area\":\"{}\"}}",
        k ? "," : "", pv.id, pv.bus, pv.phase, req.available_kw[k], pv.area);
  }
  return out + "]}";
}

std::string Field(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return "";
  at += key.size() + 3;
  size_t end = json.find_first_of(",}", at);
  std::string v = json.substr(at, end - at);
  v.erase(0, v.find_first_not_of(' '));
  return v;
}

int Run(const std::string& scenario_path, const std::string& python, const std::string& script,
        const std::string& dir, int repeats) {
  auto sc = LoadScenario(scenario_path);
  if (!sc.ok()) {
    fmt::print(stderr, "feeder bench: {}\n", sc.status().message());
    return 1;
  }
  auto model = LoadScenarioFeeder(*sc);
  if (!model.ok()) {
    fmt::print(stderr, "feeder bench: {}\n", model.status().message());
    return 1;
  }
  CurtailmentRequest req;
  req.load_mult = sc->load_mult;
  req.source_pu = sc->source_pu;
  req.v_min_pu = sc->v_min_pu;
  req.v_max_pu = sc->v_max_pu;
  for (const auto& pv : model->pvs) req.available_kw.push_back(pv.rated_kw * sc->pv_mult);
  PowerFlowOptions pf;
  pf.load_mult = req.load_mult;
  pf.source_pu = req.source_pu;
  auto before = SolvePowerFlow(*model, req.available_kw, pf);
  if (!before.ok()) return 1;
  // The program Curtail solves first: LinDistFlow anchored on the power flow.
  LinearModel lm = BuildLinearModel(*model, req.load_mult, req.source_pu);
  std::vector<PhaseValues> lin = lm.VoltageSquared(*model, req.available_kw);
  std::vector<PhaseValues> offset(lin.size(), {0, 0, 0});
  for (size_t b = 0; b < lin.size(); ++b)
    for (int p = 0; p < 3; ++p)
      if (model->buses[b].phases[p]) offset[b][p] = std::norm(before->voltage[b][p]) - lin[b][p];

  double ours_total = 0, py_total = 0;
  bool agree = true;
  for (FairnessPolicy policy : {FairnessPolicy::kEqualRatio, FairnessPolicy::kPerArea,
                                FairnessPolicy::kEqualKw, FairnessPolicy::kMinTotal}) {
    req.policy = policy;
    std::string net_path = fmt::format("{}/curtail-{}.json", dir, PolicyName(policy));
    std::ofstream(net_path) << NetworkJson(*model, lm, req, offset);
    // C++: build the program from the linearised feeder and solve it.
    std::vector<double> ms;
    double objective = 0;
    int rows = 0, cols = 0;
    for (int i = 0; i <= repeats; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      LinearProgram lp = BuildCurtailmentLp(*model, lm, req, offset);
      auto sol = SolveLp(lp);
      auto t1 = std::chrono::steady_clock::now();
      if (!sol.ok() || !sol->feasible) {
        fmt::print(stderr, "feeder bench: {}: no solution\n", PolicyName(policy));
        return 1;
      }
      objective = sol->objective;
      rows = lp.Rows();
      cols = lp.Cols();
      if (i > 0) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::string cmd = fmt::format("'{}' '{}' '{}' {}", python, script, net_path, repeats);
    FILE* pipe = popen(cmd.c_str(), "r");
    if (!pipe) return 1;
    std::string out;
    char buf[4096];
    while (fgets(buf, sizeof buf, pipe)) out += buf;
    if (pclose(pipe) != 0 || Field(out, "py_ms").empty()) {
      fmt::print(stderr, "feeder bench: {} failed: {}\n", cmd, out);
      return 1;
    }
    double py_ms = std::stod(Field(out, "py_ms"));
    std::string py_obj_s = Field(out, "objective");
    double py_obj = py_obj_s == "null" ? NAN : std::stod(py_obj_s);
    double diff = std::abs(py_obj - objective) / std::max(1.0, std::abs(objective));
    bool same = diff <= 1e-6;
    agree = agree && same;
    double ours_ms = Median(ms);
    ours_total += ours_ms;
    py_total += py_ms;
    fmt::print(
        "{{\"name\": \"curtail\", \"policy\": \"{}\", \"rows\": {}, \"cols\": {}, "
        "\"ours_ms\": {:.4f}, \"ours_ms_min\": {:.4f}, \"ours_ms_max\": {:.4f}, "
        "\"py_ms\": {:.4f}, \"ratio\": {:.1f}, \"objective_kw\": {:.9f}, "
        "\"py_objective_kw\": {:.9f}, \"relative_difference\": {:.3g}}}\n",
        PolicyName(policy), rows, cols, ours_ms, *std::min_element(ms.begin(), ms.end()),
        *std::max_element(ms.begin(), ms.end()), py_ms, py_ms / ours_ms, objective, py_obj, diff);
  }
  fmt::print(
      "{{\"name\": \"curtail_total\", \"ours_ms\": {:.4f}, \"py_ms\": {:.4f}, \"ratio\": {:.1f}, "
      "\"objectives_agree\": {}}}\n",
      ours_total, py_total, py_total / ours_total, agree ? "true" : "false");
  if (!agree) {
    fmt::print(stderr, "feeder bench: the objectives differ by more than 1e-6\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"derms-feeder-bench: the curtailment LP, C++/GLPK vs Python/SciPy HiGHS"};
  std::string scenario = "feeder/scenarios/ieee123_overvoltage.toml";
  std::string python = "/usr/bin/python3";
  std::string script = "bench/python_curtail.py";
  std::string dir = "/tmp";
  int repeats = 21;
  app.add_option("--scenario", scenario, "scenario TOML");
  app.add_option("--python", python, "Debian's interpreter (with python3-scipy)");
  app.add_option("--script", script, "the Python baseline");
  app.add_option("--dir", dir, "where the exported networks are written");
  app.add_option("--repeats", repeats, "timed runs of each side after one warm-up; medians")
      ->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);
  return Run(scenario, python, script, dir, repeats);
}
