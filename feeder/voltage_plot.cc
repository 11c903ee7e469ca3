#include "feeder/voltage_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace derms::feeder {
namespace {

constexpr double kWidth = 900, kPlotH = 360, kBarH = 160;
constexpr double kLeft = 70, kRight = 20, kTop = 40, kGap = 60;
constexpr const char* kColor[3] = {"#1f77b4", "#d62728", "#2ca02c"};

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string VoltageProfileSvg(const FeederModel& model, const CurtailmentRequest& request,
                              const CurtailmentResult& result, const std::string& title) {
  const double height = kTop + kPlotH + kGap + kBarH + 40;
  const double plot_w = kWidth - kLeft - kRight;
  double max_d = 0;
  for (const Bus& b : model.buses) max_d = std::max(max_d, b.distance_kft);
  if (max_d <= 0) max_d = 1;
  // The voltages and the upper limit (the lower one only when close).
  double v_lo = request.v_max_pu, v_hi = request.v_max_pu;
  for (size_t b = 0; b < model.buses.size(); ++b)
    for (int p = 0; p < 3; ++p) {
      if (!model.buses[b].phases[p]) continue;
      for (const PowerFlowResult* r : {&result.before, &result.after}) {
        if (r->voltage.size() != model.buses.size()) continue;
        double v = r->Magnitude(static_cast<int>(b), p);
        v_lo = std::min(v_lo, v);
        v_hi = std::max(v_hi, v);
      }
    }
  v_lo -= 0.005;
  v_hi += 0.005;
  auto x_of = [&](double d) { return kLeft + d / max_d * plot_w; };
  auto y_of = [&](double v) { return kTop + (v_hi - v) / (v_hi - v_lo) * kPlotH; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{:.0f}\" y=\"20\" font-size=\"14\">{}</text>\n",
      kWidth, height, kLeft, Escape(title));
  // Axes and grid.
  svg += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
      "stroke=\"#444\"/>\n",
      kLeft, kTop, plot_w, kPlotH);
  for (double v = std::ceil(v_lo * 100) / 100; v <= v_hi; v += 0.01) {
    svg += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.2f}</text>\n",
        kLeft, kLeft + plot_w, y_of(v), y_of(v), kLeft - 6, y_of(v) + 4, v);
  }
  for (int i = 0; i <= 5; ++i) {
    double d = max_d * i / 5;
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.1f}</text>\n",
                       x_of(d), kTop + kPlotH + 16, d);
  }
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">distance from the source, "
      "kft</text>\n<text x=\"14\" y=\"{:.1f}\" transform=\"rotate(-90 14 {:.1f})\" "
      "text-anchor=\"middle\">|V|, pu</text>\n",
      kLeft + plot_w / 2, kTop + kPlotH + 32, kTop + kPlotH / 2, kTop + kPlotH / 2);
  for (double limit : {request.v_max_pu, request.v_min_pu}) {
    if (limit < v_lo || limit > v_hi) continue;
    svg += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"black\" "
        "stroke-dasharray=\"6 4\"/><text x=\"{:.1f}\" y=\"{:.1f}\" "
        "text-anchor=\"end\">limit {:.3f} pu</text>\n",
        kLeft, kLeft + plot_w, y_of(limit), y_of(limit), kLeft + plot_w - 4, y_of(limit) - 4,
        limit);
  }
  // Branches as thin lines (after), points per bus-phase: before hollow, after filled.
  for (int pass = 0; pass < 2; ++pass) {
    const PowerFlowResult& r = pass == 0 ? result.before : result.after;
    if (r.voltage.size() != model.buses.size()) continue;
    for (const Branch& br : model.branches)
      for (int p = 0; p < 3; ++p) {
        if (!br.phases[p]) continue;
        svg += fmt::format(
            "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
            "stroke-opacity=\"{}\" stroke-width=\"1\"/>\n",
            x_of(model.buses[br.from_bus].distance_kft), y_of(r.Magnitude(br.from_bus, p)),
            x_of(model.buses[br.to_bus].distance_kft), y_of(r.Magnitude(br.to_bus, p)), kColor[p],
            pass == 0 ? "0.25" : "0.7");
      }
    for (size_t b = 0; b < model.buses.size(); ++b)
      for (int p = 0; p < 3; ++p) {
        if (!model.buses[b].phases[p]) continue;
        svg += fmt::format(
            "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" stroke=\"{}\" fill=\"{}\">"
            "<title>{} phase {} {}: {:.4f} pu</title></circle>\n",
            x_of(model.buses[b].distance_kft), y_of(r.Magnitude(static_cast<int>(b), p)), kColor[p],
            pass == 0 ? "white" : kColor[p], Escape(model.buses[b].name), p + 1,
            pass == 0 ? "before" : "after", r.Magnitude(static_cast<int>(b), p));
      }
  }
  // Legend.
  for (int p = 0; p < 3; ++p) {
    svg += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/><text x=\"{:.1f}\" "
        "y=\"{:.1f}\">phase {}</text>\n",
        kLeft + 12 + 80 * p, kTop + 14, kColor[p], kLeft + 20 + 80 * p, kTop + 18, p + 1);
  }
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\">hollow: before ({:.4f} pu max), filled: after "
      "({:.4f} pu max)</text>\n",
      kLeft + 260, kTop + 18, result.max_before.v_pu, result.max_after.v_pu);
  // Curtailment per PV, as bars in model order.
  const double bar_top = kTop + kPlotH + kGap;
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\">curtailment ratio per PV ({} PVs, {:.1f} of {:.1f} "
      "kW): {}</text>\n<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
      "fill=\"none\" stroke=\"#444\"/>\n",
      kLeft, bar_top - 6, model.pvs.size(), result.curtailed_kw, result.available_kw,
      Escape(result.reason), kLeft, bar_top, plot_w, kBarH);
  const size_t n = std::max<size_t>(1, model.pvs.size());
  const double bw = plot_w / static_cast<double>(n);
  for (size_t k = 0; k < model.pvs.size() && k < result.ratio.size(); ++k) {
    double h = result.ratio[k] * kBarH;
    svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
        "<title>{} (bus {} phase {}): ratio {:.4f}, cap {:.1f} kW</title></rect>\n",
        kLeft + bw * k + 0.5, bar_top + kBarH - h, std::max(0.5, bw - 1), h,
        kColor[model.pvs[k].phase], Escape(model.pvs[k].id),
        Escape(model.buses[model.pvs[k].bus].name), model.pvs[k].phase + 1, result.ratio[k],
        k < result.cap_kw.size() ? result.cap_kw[k] : 0.0);
  }
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">1</text><text x=\"{:.1f}\" "
      "y=\"{:.1f}\" text-anchor=\"end\">0</text>\n</svg>\n",
      kLeft - 6, bar_top + 4, kLeft - 6, bar_top + kBarH + 4);
  return svg;
}

}  // namespace derms::feeder
