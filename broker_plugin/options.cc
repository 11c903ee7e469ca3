#include "broker_plugin/options.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "common/topics.h"

namespace derms::broker {
namespace {

Status Bad(const std::string& key, const std::string& value, std::string_view rule) {
  return Status::Error("invalid_option",
                       fmt::format("plugin_opt_{} '{}': {}", key, value.substr(0, 80), rule));
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

// A comma-separated list of identifiers.
Status Names(const std::string& key, const std::string& value, std::set<std::string>* out) {
  out->clear();
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string::npos) comma = value.size();
    std::string name = Trim(std::string_view(value).substr(start, comma - start));
    if (!name.empty()) {
      if (!topics::IsValidId(name)) {
        return Bad(key, value,
                   fmt::format("'{}' does not match [A-Za-z0-9_-]{{1,64}}", name.substr(0, 80)));
      }
      out->insert(name);
    }
    start = comma + 1;
  }
  return Status::Ok();
}

Status Int(const std::string& key, const std::string& value, int64_t lo, int64_t hi, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) {
    return Bad(key, value, fmt::format("must be a whole number in [{}, {}]", lo, hi));
  }
  *out = v;
  return Status::Ok();
}

Status Real(const std::string& key, const std::string& value, double lo, double hi, double* out) {
  char* end = nullptr;
  double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) {
    return Bad(key, value, fmt::format("must be a number in [{}, {}]", lo, hi));
  }
  *out = v;
  return Status::Ok();
}

}  // namespace

StatusOr<PluginOptions> ParseOptions(const std::vector<std::pair<std::string, std::string>>& kv) {
  PluginOptions o;
  for (const auto& [key, raw] : kv) {
    const std::string value = Trim(raw);
    Status s;
    if (key == "password_file") {
      o.password_file = value;
    } else if (key == "aggregators") {
      s = Names(key, value, &o.aggregators);
    } else if (key == "operators") {
      s = Names(key, value, &o.operators);
    } else if (key == "dispatchers") {
      s = Names(key, value, &o.dispatchers);
    } else if (key == "anonymous_role") {
      if (value != "none" && value != "operator" && value != "dispatcher" &&
          value != "aggregator") {
        s = Bad(key, value, "must be none, operator, dispatcher or aggregator");
      } else {
        o.anonymous_role = value;
      }
    } else if (key == "operator_der_topics") {
      s = Names(key, value, &o.operator_der_leaves);
    } else if (key == "reply_prefix") {
      if (value.empty() || value.find_first_of("+#") != std::string::npos ||
          value.rfind("derms/", 0) == 0) {
        s = Bad(key, value, "must be a topic prefix without wildcards, outside derms/");
      } else {
        o.reply_prefix = value;
      }
    } else if (key == "max_payload_bytes") {
      s = Int(key, value, 64, 256 * 1024 * 1024, &o.max_payload_bytes);
    } else if (key == "rate_factor") {
      s = Real(key, value, 0.01, 1e6, &o.rate_factor);
    } else if (key == "default_interval_s") {
      s = Real(key, value, 0.001, 86400, &o.default_interval_s);
    } else if (key == "rate_burst") {
      s = Real(key, value, 1, 1e6, &o.rate_burst);
    } else if (key == "historical_burst") {
      s = Real(key, value, 1, 1e7, &o.historical_burst);
    } else if (key == "kick_after_drops") {
      s = Int(key, value, 0, 1000000000, &o.kick_after_drops);
    } else if (key == "status_interval_s") {
      s = Int(key, value, 1, 3600, &o.status_interval_s);
    } else if (key == "top_offenders") {
      s = Int(key, value, 0, 100, &o.top_offenders);
    } else {
      s = Status::Error("invalid_option", fmt::format("plugin_opt_{}: not a known option", key));
    }
    if (!s.ok()) return s;
  }
  for (const auto* role : {&o.operators, &o.dispatchers}) {
    for (const auto& name : *role) {
      if (o.aggregators.count(name) || (role == &o.dispatchers && o.operators.count(name))) {
        return Status::Error("invalid_option",
                             fmt::format("user '{}' is given more than one role", name));
      }
    }
  }
  return o;
}

}  // namespace derms::broker
