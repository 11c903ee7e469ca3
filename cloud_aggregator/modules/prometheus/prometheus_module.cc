#include "cloud_aggregator/modules/prometheus/prometheus_module.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

namespace derms::aggregator {
namespace {

constexpr char kPrefix[] = "derms_aggregator_";

// Backslash and newline escaped, and double quotes too for a label value
// (HELP text leaves them as they are).
std::string Escape(const std::string& s, bool quotes) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}
std::string EscapeHelp(const std::string& s) { return Escape(s, false); }
std::string EscapeLabel(const std::string& s) { return Escape(s, true); }

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Whole values (every counter) without an exponent or a fraction.
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.0f}", v);
  return fmt::format("{}", v);
}

}  // namespace

void PrometheusOptions::Describe(config::OptionSet& set) {
  set.Text("prometheus.textfile", &textfile, config::OptionSet::TextRule::kAny,
           "file the metrics are written to in Prometheus text format, for node_exporter's "
           "textfile collector (\"\": off)")
      .Cli("--prometheus-textfile");
  set.Int("prometheus.interval_s", &interval_s, 1, 3600, "wall seconds between writes");
}

std::string RenderPrometheus(const MetricsSnapshot& snapshot) {
  std::string out;
  for (const MetricsSnapshot::Family& f : snapshot.families) {
    const MetricFamilyInfo& about = *f.about;
    const bool counter = about.type == MetricFamilyInfo::Type::kCounter;
    const std::string name = kPrefix + about.name + (counter ? "_total" : "");
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, EscapeHelp(about.help), name,
                       counter ? "counter" : "gauge");
    if (about.label.empty()) {
      out += fmt::format("{} {}\n", name, Number(f.value));
      continue;
    }
    for (const auto& [value, n] : f.by_label) {
      out += fmt::format("{}{{{}=\"{}\"}} {}\n", name, about.label, EscapeLabel(value), Number(n));
    }
  }
  for (const auto& [info_name, text] : snapshot.info) {
    const std::string name = kPrefix + info_name + "_info";
    out += fmt::format("# HELP {} {} (the text in the label; absent when none)\n# TYPE {} gauge\n",
                       name, info_name, name);
    if (!text.empty()) out += fmt::format("{}{{text=\"{}\"}} 1\n", name, EscapeLabel(text));
  }
  return out;
}

Status WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  auto failed = [&](const char* what) {
    Status s = Status::Error("io_error", fmt::format("{} '{}': {}", what, tmp, std::strerror(errno)));
    ::unlink(tmp.c_str());
    return s;
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Error("io_error", fmt::format("creating '{}': {}", tmp,
                                                           std::strerror(errno)));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return failed("writing");
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return failed("closing");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return failed("renaming into place");
  return Status::Ok();
}

StatusOr<std::unique_ptr<PrometheusModule>> PrometheusModule::Create(
    const PrometheusOptions& options, const ModulePorts& ports) {
  if (!options.textfile.empty()) {
    std::filesystem::path dir = std::filesystem::path(options.textfile).parent_path();
    if (dir.empty()) dir = ".";
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      return Status::Error("invalid_value",
                           fmt::format("prometheus.textfile '{}': directory '{}' does not exist",
                                       options.textfile, dir.string()));
    }
  }
  return std::unique_ptr<PrometheusModule>(new PrometheusModule(options, ports));
}

PrometheusModule::PrometheusModule(const PrometheusOptions& options, const ModulePorts& ports)
    : options_(options),
      metrics_(ports.metrics),
      intake_(ports.intake),
      written_(ports.metrics.AddCounter("prometheus_writes", "metrics textfile writes")),
      write_errors_(ports.metrics.AddCounter("prometheus_write_errors",
                                             "metrics textfile writes that failed")) {}

void PrometheusModule::AddJobs(Scheduler& scheduler) {
  if (options_.textfile.empty()) return;
  scheduler.Every(
      "prometheus.textfile", options_.interval_s * 1000,
      [this, &scheduler](int64_t now_ms) {
        // Rendered here, from this moment's snapshot; written off the
        // processing thread, its outcome counted back on it.
        auto text = std::make_shared<std::string>(RenderPrometheus(metrics_.Snapshot(now_ms)));
        scheduler.Once(
            [this, text](int64_t) -> Scheduler::Completion {
              Status s = WriteFileAtomically(options_.textfile, *text);
              return [this, s] {
                if (s.ok()) {
                  written_.Add();
                } else {
                  write_errors_.Add();
                  intake_.Warn("prometheus_textfile", s.message());
                }
              };
            },
            now_ms);
      },
      /*at_start=*/true);
}

}  // namespace derms::aggregator
