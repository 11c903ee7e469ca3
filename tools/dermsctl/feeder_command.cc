#include "tools/dermsctl/feeder_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <sqlite3.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "feeder/curtailment.h"
#include "feeder/dss_parser.h"
#include "feeder/power_flow.h"
#include "feeder/scenario.h"
#include "feeder/voltage_plot.h"
#include "tools/dermsctl/arguments.h"

namespace derms::dermsctl {
namespace {

using derms::feeder::FairnessPolicy;
using derms::feeder::FeederModel;

constexpr char kPowerflow[] = "feeder powerflow";
constexpr char kCurtail[] = "feeder curtail";
constexpr char kPlot[] = "feeder plot";

// "reg1a=7,reg4b=-1" into the model's taps.
Status ApplyTaps(const std::string& text, FeederModel* model) {
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() : comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    char* end = nullptr;
    long step = eq == std::string::npos ? 0 : std::strtol(item.c_str() + eq + 1, &end, 10);
    if (eq == std::string::npos || eq == 0 || end == item.c_str() + eq + 1 || *end != '\0' ||
        step < -16 || step > 16) {
      return Status::Error("invalid_argument",
                           fmt::format("--taps '{}': each item must be NAME=STEP, STEP an integer "
                                       "in [-16, 16]",
                                       item));
    }
    std::string name = item.substr(0, eq);
    if (!model->SetTap(name, static_cast<int>(step))) {
      std::string known;
      for (const auto& [n, t] : model->Taps()) known += (known.empty() ? "" : ", ") + n;
      return Status::Error(
          "invalid_argument",
          fmt::format("--taps '{}': no regulator '{}' (the feeder has: {})", item, name, known));
    }
  }
  return Status::Ok();
}

struct PowerflowArgs {
  std::string feeder;
  std::string taps;
  double load_mult = 1.0;
  double pv_mult = 0.0;
  double source_pu = -1;
  std::string format = "table";
};

int RunPowerflow(const PowerflowArgs& a) {
  Status checks =
      FirstError({CheckFinite("--load-mult", a.load_mult), CheckFinite("--pv-mult", a.pv_mult),
                  CheckFinite("--source-pu", a.source_pu)});
  if (!checks.ok()) return Fail(kPowerflow, checks.message(), kExitBadArgument);
  if (a.load_mult < 0 || a.pv_mult < 0) {
    return Fail(kPowerflow, "--load-mult and --pv-mult must be >= 0", kExitBadArgument);
  }
  if (a.source_pu != -1 && (a.source_pu <= 0.5 || a.source_pu >= 1.5)) {
    return Fail(kPowerflow, fmt::format("--source-pu {}: must be in (0.5, 1.5)", a.source_pu),
                kExitBadArgument);
  }
  auto master = feeder::FindMasterFile(a.feeder);
  if (!master.ok()) return Fail(kPowerflow, master.status().message());
  auto parsed = feeder::ParseDssFile(*master);
  if (!parsed.ok()) return Fail(kPowerflow, parsed.status().message());
  FeederModel model = std::move(parsed).value();
  Status taps = ApplyTaps(a.taps, &model);
  if (!taps.ok()) return Fail(kPowerflow, taps.message(), kExitBadArgument);
  std::vector<double> pv_kw;
  if (a.pv_mult > 0) {
    feeder::PlacePvAtLoads(&model, "zone");
    for (const auto& pv : model.pvs) pv_kw.push_back(pv.rated_kw * a.pv_mult);
  }
  feeder::PowerFlowOptions options;
  options.load_mult = a.load_mult;
  options.source_pu = a.source_pu;
  auto r = feeder::SolvePowerFlow(model, pv_kw, options);
  if (!r.ok()) return Fail(kPowerflow, r.status().message());
  if (a.format == "json") {
    std::string out = "{\"buses\":[";
    bool first = true;
    for (size_t b = 0; b < model.buses.size(); ++b)
      for (int p = 0; p < 3; ++p) {
        if (!model.buses[b].phases[p]) continue;
        out +=
            fmt::format("{}{{\"bus\":\"{}\",\"phase\":{},\"vmag_pu\":{:.6f},\"angle_deg\":{:.4f}}}",
                        first ? "" : ",", model.buses[b].name, p + 1,
                        r->Magnitude(static_cast<int>(b), p), r->AngleDeg(static_cast<int>(b), p));
        first = false;
      }
    out += fmt::format("],\"iterations\":{},\"source_kw\":{:.3f},\"source_kvar\":{:.3f}}}",
                       r->iterations, r->source_kw, r->source_kvar);
    fmt::print("{}\n", out);
    return 0;
  }
  bool csv = a.format == "csv";
  if (csv) {
    fmt::print("bus,phase,vmag_pu,angle_deg\n");
  } else {
    fmt::print("{:<8} {:>5} {:>9} {:>10}\n", "bus", "phase", "vmag_pu", "angle_deg");
  }
  for (size_t b = 0; b < model.buses.size(); ++b)
    for (int p = 0; p < 3; ++p) {
      if (!model.buses[b].phases[p]) continue;
      double m = r->Magnitude(static_cast<int>(b), p), d = r->AngleDeg(static_cast<int>(b), p);
      if (std::abs(d) < 5e-5) d = 0;  // no "-0.00"
      if (csv) {
        fmt::print("{},{},{:.6f},{:.4f}\n", model.buses[b].name, p + 1, m, d);
      } else {
        fmt::print("{:<8} {:>5} {:>9.4f} {:>10.2f}\n", model.buses[b].name, p + 1, m, d);
      }
    }
  if (!csv) {
    auto mx = r->Max(model), mn = r->Min(model);
    fmt::print(
        "({} bus-phases, {} iterations; source {:.1f} kW {:.1f} kvar; highest {:.4f} pu at "
        "{}.{}, lowest {:.4f} pu at {}.{})\n",
        [&] {
          int n = 0;
          for (const auto& b : model.buses) n += b.phases[0] + b.phases[1] + b.phases[2];
          return n;
        }(),
        r->iterations, r->source_kw, r->source_kvar, mx.v_pu, model.buses[mx.bus].name,
        mx.phase + 1, mn.v_pu, model.buses[mn.bus].name, mn.phase + 1);
  }
  return 0;
}

struct CurtailArgs {
  std::string feeder;
  std::string scenario;
  std::string policy = "all";
  bool day = false;
  bool per_pv = false;
  double v_min = -1, v_max = -1;
  std::string format = "table";
  std::string svg;  // write the voltage profile here (one policy, snapshot)
  int step = -1;    // >= 0: the snapshot at this quarter-hour of the day
};

// A string as a JSON string body (the reasons are plain text, but a bus
// name comes from a file).
std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

std::string ResultJson(const FeederModel& model, const feeder::CurtailmentResult& r,
                       FairnessPolicy policy, bool per_pv,
                       const std::vector<double>& available_kw) {
  std::string out = fmt::format(
      "{{\"policy\":\"{}\",\"feasible\":{},\"reason\":\"{}\",\"available_kw\":{:.3f},"
      "\"curtailed_kw\":{:.3f},\"max_ratio\":{:.6f},\"min_ratio\":{:.6f},\"jain_index\":{:.6f},"
      "\"iterations\":{},\"max_v_before_pu\":{:.6f},\"max_v_after_pu\":{:.6f},"
      "\"model_error_pu\":[{:.6f}]",
      feeder::PolicyName(policy), r.feasible ? "true" : "false", Escape(r.reason), r.available_kw,
      r.curtailed_kw, r.max_ratio, r.min_ratio, r.jain_index, r.iterations, r.max_before.v_pu,
      r.max_after.v_pu, fmt::join(r.model_error_pu, ","));
  if (per_pv) {
    out += ",\"pvs\":[";
    for (size_t k = 0; k < model.pvs.size(); ++k) {
      const auto& pv = model.pvs[k];
      out += fmt::format(
          "{}{{\"id\":\"{}\",\"bus\":\"{}\",\"phase\":{},\"available_kw\":{:.3f},"
          "\"ratio\":{:.6f},\"cap_kw\":{:.3f}}}",
          k ? "," : "", pv.id, model.buses[pv.bus].name, pv.phase + 1, available_kw[k], r.ratio[k],
          r.cap_kw[k]);
    }
    out += "]";
  }
  return out + "}";
}

int RunCurtail(const CurtailArgs& a) {
  auto scenario = feeder::LoadScenario(a.scenario);
  if (!scenario.ok()) return Fail(kCurtail, scenario.status().message());
  feeder::Scenario sc = *scenario;
  if (!a.feeder.empty()) sc.feeder_dir = a.feeder;
  if (a.v_min != -1) sc.v_min_pu = a.v_min;
  if (a.v_max != -1) sc.v_max_pu = a.v_max;
  if (!(sc.v_min_pu > 0 && sc.v_min_pu < sc.v_max_pu && sc.v_max_pu < 2)) {
    return Fail(kCurtail,
                fmt::format("--v-min {} and --v-max {}: need 0 < v-min < v-max < 2", sc.v_min_pu,
                            sc.v_max_pu),
                kExitBadArgument);
  }
  std::vector<FairnessPolicy> policies;
  if (a.policy == "all") {
    policies = {FairnessPolicy::kEqualRatio, FairnessPolicy::kPerArea, FairnessPolicy::kEqualKw,
                FairnessPolicy::kMinTotal};
  } else {
    auto p = feeder::ParsePolicy(a.policy);
    if (!p.ok()) return Fail(kCurtail, "--" + p.status().message(), kExitBadArgument);
    policies = {*p};
  }
  if (!a.svg.empty() && (policies.size() != 1 || a.day)) {
    return Fail(kCurtail, "--svg needs one --policy and no --day", kExitBadArgument);
  }
  if (a.step >= 0) {
    if (a.day) return Fail(kCurtail, "--step and --day: one or the other", kExitBadArgument);
    auto load = feeder::ReadShape(sc.load_shape);
    if (!load.ok()) return Fail(kCurtail, load.status().message());
    auto pv = feeder::ReadShape(sc.pv_shape);
    if (!pv.ok()) return Fail(kCurtail, pv.status().message());
    size_t steps = std::min(load->size(), pv->size());
    if (static_cast<size_t>(a.step) >= steps) {
      return Fail(kCurtail, fmt::format("--step {}: must be in [0, {}]", a.step, steps - 1),
                  kExitBadArgument);
    }
    // As the day runs it: loads at load_mult x the load shape, PV at the PV shape.
    sc.load_mult *= (*load)[a.step];
    sc.pv_mult = (*pv)[a.step];
  }
  auto model = feeder::LoadScenarioFeeder(sc);
  if (!model.ok()) return Fail(kCurtail, model.status().message());
  const bool json = a.format == "json";
  const bool csv = a.format == "csv";
  if (csv && a.day)
    return Fail(kCurtail, "--format csv is per PV: not with --day", kExitBadArgument);
  if (a.day) {
    if (!json) {
      fmt::print("{:<12} {:>14} {:>14} {:>13} {:>9} {:>13} {:>12} {:>9} {:>10} {:>13}\n", "policy",
                 "curtailed_kwh", "available_kwh", "peak_kw", "max_ratio", "min_ratio@pk",
                 "jain@peak", "steps", "max_iter", "max_v_after");
    }
    std::string out = "[";
    for (FairnessPolicy p : policies) {
      auto d = feeder::RunDay(*model, sc, p);
      if (!d.ok()) return Fail(kCurtail, d.status().message());
      if (json) {
        out += fmt::format(
            "{}{{\"policy\":\"{}\",\"curtailed_kwh\":{:.3f},\"available_kwh\":{:.3f},"
            "\"peak_curtailed_kw\":{:.3f},\"max_ratio\":{:.6f},"
            "\"min_ratio_at_peak\":{:.6f},\"jain_at_peak\":{:.6f},"
            "\"steps_curtailed\":{},\"steps_infeasible\":{},\"max_iterations\":{},"
            "\"max_v_after_pu\":{:.6f}}}",
            out.size() > 1 ? "," : "", feeder::PolicyName(p), d->curtailed_kwh, d->available_kwh,
            d->peak_curtailed_kw, d->max_ratio, d->min_ratio_at_peak, d->jain_at_peak,
            d->steps_curtailed, d->steps_infeasible, d->max_iterations, d->max_after_pu);
      } else {
        fmt::print(
            "{:<12} {:>14.1f} {:>14.1f} {:>13.1f} {:>9.4f} {:>13.4f} {:>12.4f} {:>9} {:>10} "
            "{:>13.4f}\n",
            feeder::PolicyName(p), d->curtailed_kwh, d->available_kwh, d->peak_curtailed_kw,
            d->max_ratio, d->min_ratio_at_peak, d->jain_at_peak,
            fmt::format("{}/{}", d->steps_curtailed, d->steps.size()), d->max_iterations,
            d->max_after_pu);
        for (const auto& s : d->steps) {
          if (!s.feasible) fmt::print("  step {}: {}\n", s.step, s.reason);
        }
      }
    }
    if (json) fmt::print("{}]\n", out);
    return 0;
  }
  bool any_infeasible = false;
  std::string out = "[";
  if (csv) fmt::print("policy,pv,bus,phase,available_kw,ratio,cap_kw,feasible\n");
  if (!json && !csv) {
    fmt::print("{:<12} {:>13} {:>12} {:>9} {:>9} {:>10} {:>10} {:>12} {:>11}\n", "policy",
               "curtailed_kw", "available_kw", "max_ratio", "min_ratio", "jain", "iterations",
               "max_v_before", "max_v_after");
  }
  for (FairnessPolicy p : policies) {
    feeder::CurtailmentRequest req;
    req.policy = p;
    req.v_min_pu = sc.v_min_pu;
    req.v_max_pu = sc.v_max_pu;
    req.load_mult = sc.load_mult;
    req.source_pu = sc.source_pu;
    for (const auto& pv : model->pvs) req.available_kw.push_back(pv.rated_kw * sc.pv_mult);
    auto r = feeder::Curtail(*model, req);
    if (!r.ok()) return Fail(kCurtail, r.status().message());
    any_infeasible = any_infeasible || !r->feasible;
    if (!a.svg.empty()) {
      std::ofstream svg(a.svg);
      svg << feeder::VoltageProfileSvg(
          *model, req, *r,
          fmt::format("{}: {}, loads x{}, PV x{}, source {} pu", a.scenario, feeder::PolicyName(p),
                      sc.load_mult, sc.pv_mult, sc.source_pu));
      if (!svg) return Fail(kCurtail, fmt::format("--svg '{}': cannot write", a.svg));
    }
    if (json) {
      out += (out.size() > 1 ? "," : "") + ResultJson(*model, *r, p, a.per_pv, req.available_kw);
      continue;
    }
    if (csv) {
      for (size_t k = 0; k < model->pvs.size(); ++k) {
        const auto& pv = model->pvs[k];
        fmt::print("{},{},{},{},{:.3f},{:.6f},{:.3f},{}\n", feeder::PolicyName(p), pv.id,
                   model->buses[pv.bus].name, pv.phase + 1, req.available_kw[k], r->ratio[k],
                   r->cap_kw[k], r->feasible ? "true" : "false");
      }
      continue;
    }
    if (!r->feasible) {
      fmt::print("{:<12} {}\n", feeder::PolicyName(p), r->reason);
      continue;
    }
    fmt::print(
        "{:<12} {:>13.1f} {:>12.1f} {:>9.4f} {:>9.4f} {:>10.4f} {:>10} {:>12.4f} {:>11.4f}\n",
        feeder::PolicyName(p), r->curtailed_kw, r->available_kw, r->max_ratio, r->min_ratio,
        r->jain_index, r->iterations, r->max_before.v_pu, r->max_after.v_pu);
    if (a.per_pv) {
      fmt::print("  {:<12} {:>6} {:>5} {:>12} {:>8} {:>9}\n", "pv", "bus", "phase", "available_kw",
                 "ratio", "cap_kw");
      for (size_t k = 0; k < model->pvs.size(); ++k) {
        const auto& pv = model->pvs[k];
        fmt::print("  {:<12} {:>6} {:>5} {:>12.1f} {:>8.4f} {:>9.1f}\n", pv.id,
                   model->buses[pv.bus].name, pv.phase + 1, req.available_kw[k], r->ratio[k],
                   r->cap_kw[k]);
      }
    }
  }
  if (json) fmt::print("{}]\n", out);
  return any_infeasible ? kExitFailure : 0;
}


struct PlotArgs {
  std::string db;        // the aggregator's database
  std::string scenario;  // the feeder the runs were planned on
  int64_t run_id = 0;    // 0: the run that curtailed most
  std::string svg;
};

// A curtailment run the aggregator recorded (curtailment_runs, _members,
// _voltages), drawn as `feeder curtail --svg` draws a planned one.
int RunPlot(const PlotArgs& a) {
  auto scenario = feeder::LoadScenario(a.scenario);
  if (!scenario.ok()) return Fail(kPlot, scenario.status().message());
  auto model = feeder::LoadScenarioFeeder(*scenario);
  if (!model.ok()) return Fail(kPlot, model.status().message());
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(a.db.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return Fail(kPlot, fmt::format("--db '{}': cannot open", a.db));
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer(db, sqlite3_close);
  sqlite3_busy_timeout(db, 5000);
  // Each query's rows, one callback per row, its columns as text.
  auto rows = [db](const std::string& sql, int64_t id,
                   const std::function<void(sqlite3_stmt*)>& each) -> Status {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      Status s = Status::Error("query", sqlite3_errmsg(db));
      sqlite3_finalize(stmt);
      return s;
    }
    if (id != 0) sqlite3_bind_int64(stmt, 1, id);
    while (sqlite3_step(stmt) == SQLITE_ROW) each(stmt);
    sqlite3_finalize(stmt);
    return Status::Ok();
  };
  auto text = [](sqlite3_stmt* st, int col) {
    const unsigned char* t = sqlite3_column_text(st, col);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  };
  int64_t run_id = a.run_id;
  feeder::CurtailmentResult result;
  std::string title;
  Status s = rows(run_id != 0
                      ? "SELECT run_id, available_kw, curtailed_kw, v_max_before_pu, "
                        "v_max_after_pu, policy, outcome, started_ms, reason FROM curtailment_runs "
                        "WHERE run_id = ?1"
                      : "SELECT run_id, available_kw, curtailed_kw, v_max_before_pu, "
                        "v_max_after_pu, policy, outcome, started_ms, reason FROM curtailment_runs "
                        "WHERE outcome IN ('CURTAIL_COMPLETED', 'CURTAIL_PARTIAL') "
                        "ORDER BY curtailed_kw DESC LIMIT 1",
                  run_id, [&](sqlite3_stmt* st) {
                    run_id = sqlite3_column_int64(st, 0);
                    result.available_kw = sqlite3_column_double(st, 1);
                    result.curtailed_kw = sqlite3_column_double(st, 2);
                    result.max_before.v_pu = sqlite3_column_double(st, 3);
                    result.max_after.v_pu = sqlite3_column_double(st, 4);
                    result.reason = text(st, 8);
                    title = fmt::format("curtailment run {} ({}, {}, {})", run_id, text(st, 5),
                                        text(st, 6), FormatUtc(sqlite3_column_int64(st, 7)));
                  });
  if (!s.ok()) return Fail(kPlot, fmt::format("--db '{}': {}", a.db, s.message()));
  if (title.empty()) {
    return Fail(kPlot, a.run_id != 0
                           ? fmt::format("--run {}: no such curtailment run in '{}'", a.run_id, a.db)
                           : fmt::format("no curtailment run that curtailed in '{}'", a.db));
  }
  // The feeder with the run's PVs where they said they are, and its voltages.
  FeederModel m = std::move(model).value();
  m.pvs.clear();
  s = rows("SELECT der_id, feeder_node, ratio, cap_kw FROM curtailment_members WHERE run_id = ?1 "
           "ORDER BY der_id",
           run_id, [&](sqlite3_stmt* st) {
             std::string node = text(st, 1);
             size_t dot = node.rfind('.');
             int bus = dot == std::string::npos ? -1 : m.FindBus(node.substr(0, dot));
             if (bus < 0) return;
             feeder::Pv pv;
             pv.id = text(st, 0);
             pv.bus = bus;
             pv.phase = std::atoi(node.c_str() + dot + 1) - 1;
             if (pv.phase < 0 || pv.phase > 2) return;
             m.pvs.push_back(pv);
             result.ratio.push_back(sqlite3_column_double(st, 2));
             result.cap_kw.push_back(sqlite3_column_double(st, 3));
           });
  if (!s.ok()) return Fail(kPlot, fmt::format("--db '{}': {}", a.db, s.message()));
  result.before.voltage.assign(m.buses.size(), {});
  result.after.voltage.assign(m.buses.size(), {});
  size_t voltages = 0;
  s = rows("SELECT bus, phase, before_pu, after_pu FROM curtailment_voltages WHERE run_id = ?1",
           run_id, [&](sqlite3_stmt* st) {
             int bus = m.FindBus(text(st, 0));
             int phase = sqlite3_column_int(st, 1) - 1;
             if (bus < 0 || phase < 0 || phase > 2) return;
             result.before.voltage[bus][phase] = sqlite3_column_double(st, 2);
             result.after.voltage[bus][phase] = sqlite3_column_double(st, 3);
             ++voltages;
           });
  if (!s.ok()) return Fail(kPlot, fmt::format("--db '{}': {}", a.db, s.message()));
  if (voltages == 0) return Fail(kPlot, fmt::format("run {}: no voltages recorded", run_id));
  result.feasible = true;
  feeder::CurtailmentRequest request;
  request.v_min_pu = scenario->v_min_pu;
  request.v_max_pu = scenario->v_max_pu;
  std::ofstream out(a.svg);
  out << feeder::VoltageProfileSvg(m, request, result, title);
  if (!out) return Fail(kPlot, fmt::format("--svg '{}': cannot write", a.svg));
  fmt::print("run {}: {} PVs, {:.1f} of {:.1f} kW curtailed, highest {:.4f} -> {:.4f} pu; wrote {}\n",
             run_id, m.pvs.size(), result.curtailed_kw, result.available_kw,
             result.max_before.v_pu, result.max_after.v_pu, a.svg);
  return 0;
}
}  // namespace

std::vector<Subcommand> AddFeederCommands(CLI::App& app) {
  CLI::App* group = app.add_subcommand(
      "feeder", "the feeder solver: unbalanced power flow and fair PV curtailment (no broker)");
  group->require_subcommand(1);

  auto pf = std::make_shared<PowerflowArgs>();
  CLI::App* pcmd = group->add_subcommand(
      "powerflow", "every bus and phase's voltage (pu, degrees) from the unbalanced power flow");
  pcmd->add_option("--feeder", pf->feeder, "OpenDSS model directory (with one *Master*.dss)")
      ->required();
  pcmd->add_option("--taps", pf->taps, "regulator taps, NAME=STEP,... (e.g. reg1a=7,reg4b=1)");
  pcmd->add_option("--load-mult", pf->load_mult, "loads at this times nominal (default 1)");
  pcmd->add_option("--pv-mult", pf->pv_mult,
                   "a PV at every load and phase, rated at the load's kW, producing this times "
                   "rated (default 0: none)");
  pcmd->add_option("--source-pu", pf->source_pu, "source voltage, pu (default: the model's)");
  pcmd->add_option("--format", pf->format, "table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}));

  auto ca = std::make_shared<CurtailArgs>();
  CLI::App* ccmd = group->add_subcommand(
      "curtail", "fair PV curtailment for a scenario, checked by the power flow");
  ccmd->add_option("--scenario", ca->scenario, "scenario TOML (feeder/scenarios/*.toml)")
      ->required();
  ccmd->add_option("--feeder", ca->feeder, "OpenDSS model directory (default: the scenario's)");
  ccmd->add_option("--policy", ca->policy, "equal_ratio, per_area, equal_kw, min_total or all");
  ccmd->add_flag("--day", ca->day, "run the scenario's 96 quarter-hours instead of its snapshot");
  ccmd->add_flag("--per-pv", ca->per_pv, "also print each PV's ratio and cap");
  ccmd->add_option("--v-min", ca->v_min, "lower limit, pu (default: the scenario's)");
  ccmd->add_option("--v-max", ca->v_max, "upper limit, pu (default: the scenario's)");
  ccmd->add_option("--svg", ca->svg,
                   "write the voltage profile before and after, and each PV's ratio, as SVG "
                   "(one --policy)");
  ccmd->add_option("--step", ca->step,
                   "the snapshot at this quarter-hour of the scenario's day (0-95) instead of its "
                   "own load_mult and pv_mult");
  ccmd->add_option("--format", ca->format, "table, json, or csv (one row per PV)")
      ->check(CLI::IsMember({"table", "json", "csv"}));
  auto pl = std::make_shared<PlotArgs>();
  CLI::App* lcmd = group->add_subcommand(
      "plot", "draw a curtailment run the aggregator recorded: voltages before and after, as SVG");
  lcmd->add_option("--db", pl->db, "the aggregator's database")->required();
  lcmd->add_option("--scenario", pl->scenario, "the scenario the aggregator was given")->required();
  lcmd->add_option("--run", pl->run_id, "run_id (default: the run that curtailed most)");
  lcmd->add_option("--svg", pl->svg, "where to write the picture")->required();
  return {{pcmd, [pf] { return RunPowerflow(*pf); }},
          {ccmd, [ca] { return RunCurtail(*ca); }},
          {lcmd, [pl] { return RunPlot(*pl); }}};
}

}  // namespace derms::dermsctl
