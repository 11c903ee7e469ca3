#include "common/topics.h"

#include <fmt/format.h>

#include <vector>

namespace derms::topics {
namespace {

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    parts.push_back(s.substr(start, slash == std::string_view::npos ? s.npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

std::string Join(std::string_view a, std::string_view b, std::string_view c = {}) {
  std::string t(kRoot);
  t.append(a).append("/").append(b);
  if (!c.empty()) t.append("/").append(c);
  return t;
}

Status BadTopic(std::string_view topic) {
  return Status::Error("bad_topic",
                       fmt::format("topic '{}' is not a derms/v1 topic of the contract", topic));
}

}  // namespace

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Status ValidateId(std::string_view what, std::string_view id) {
  if (IsValidId(id)) return Status::Ok();
  std::string shown(id.substr(0, 80));
  return Status::Error("invalid_id",
                       fmt::format("{} '{}' does not match [A-Za-z0-9_-]{{1,64}}", what, shown));
}

std::optional<Kind> RequestKindOf(std::string_view topic) {
  if (topic.substr(0, kRoot.size()) != kRoot) return std::nullopt;
  auto p = Split(topic.substr(kRoot.size()));
  if (p.size() >= 3 && p[0] == "vder" && p.back() == "dispatch") return Kind::kVderDispatch;
  if (p.size() >= 3 && p[0] == "vder" && p.back() == "curtail") return Kind::kVderCurtail;
  if (p.size() == 2 && p[0] == "schedule" && p[1] == "request") return Kind::kScheduleRequest;
  return std::nullopt;
}

StatusOr<Parsed> Parse(std::string_view topic) {
  if (topic.substr(0, kRoot.size()) != kRoot) return BadTopic(topic);
  auto p = Split(topic.substr(kRoot.size()));
  auto with_id = [&](Kind kind, std::string_view what, std::string_view id) -> StatusOr<Parsed> {
    Status s = ValidateId(what, id);
    if (!s.ok()) return Status::Error(s.code(), fmt::format("topic '{}': {}", topic, s.message()));
    return Parsed{kind, std::string(id), {}};
  };
  if (p.size() == 3 && p[0] == "der") {
    static const std::pair<std::string_view, Kind> kLeaves[] = {
        {"birth", Kind::kDerBirth},         {"status", Kind::kDerStatus},
        {"telemetry", Kind::kDerTelemetry}, {"control", Kind::kDerControl},
        {"response", Kind::kDerResponse},   {"cmd", Kind::kDerCmd}};
    for (const auto& [leaf, kind] : kLeaves) {
      if (p[2] == leaf) return with_id(kind, "der_id", p[1]);
    }
    return BadTopic(topic);
  }
  if (p.size() == 2 && p[0] == "aggregator" && p[1] == "status") {
    return Parsed{Kind::kAggregatorStatus, {}, {}};
  }
  if (p.size() == 3 && p[0] == "grid" && p[2] == "status") {
    return with_id(Kind::kGridStatus, "substation_id", p[1]);
  }
  if (p[0] == "vder") {
    if (p.size() == 3 && p[2] == "dispatch") return with_id(Kind::kVderDispatch, "vder_id", p[1]);
    if (p.size() == 3 && p[2] == "status") return with_id(Kind::kVderStatus, "vder_id", p[1]);
    if (p.size() == 4 && p[2] == "dispatch" && p[3] == "result") {
      return with_id(Kind::kVderDispatchResult, "vder_id", p[1]);
    }
    if (p.size() == 3 && p[2] == "curtail") return with_id(Kind::kVderCurtail, "vder_id", p[1]);
    if (p.size() == 4 && p[2] == "curtail" && p[3] == "result") {
      return with_id(Kind::kVderCurtailResult, "vder_id", p[1]);
    }
    if (p.size() > 3 && p.back() == "dispatch") {
      std::string id(topic.substr(kRoot.size() + 5, topic.size() - kRoot.size() - 5 - 9));
      return Status::Error(
          "invalid_id",
          fmt::format("topic '{}': vder_id '{}' is not one topic level: a virtual DER is "
                      "addressed by its own id (vder/{{vder_id}}/dispatch), not by its path",
                      topic, id.substr(0, 200)));
    }
    return BadTopic(topic);
  }
  if (p.size() == 2 && p[0] == "events") return with_id(Kind::kEvent, "event kind", p[1]);
  if (p.size() == 3 && p[0] == "forecast") {
    auto parsed = with_id(Kind::kForecast, "forecast kind", p[1]);
    if (!parsed.ok()) return parsed;
    Status s = ValidateId("forecast key", p[2]);
    if (!s.ok()) return Status::Error(s.code(), fmt::format("topic '{}': {}", topic, s.message()));
    parsed->key = std::string(p[2]);
    return parsed;
  }
  if (p[0] == "schedule") {
    if (p.size() == 2 && p[1] == "request") return Parsed{Kind::kScheduleRequest, {}, {}};
    if (p.size() == 3 && p[2] == "result")
      return with_id(Kind::kScheduleResult, "request_id", p[1]);
  }
  return BadTopic(topic);
}

std::string DerBirth(std::string_view der_id) { return Join("der", der_id, "birth"); }
std::string DerStatus(std::string_view der_id) { return Join("der", der_id, "status"); }
std::string DerTelemetry(std::string_view der_id) { return Join("der", der_id, "telemetry"); }
std::string DerControl(std::string_view der_id) { return Join("der", der_id, "control"); }
std::string DerResponse(std::string_view der_id) { return Join("der", der_id, "response"); }
std::string DerCmd(std::string_view der_id) { return Join("der", der_id, "cmd"); }
std::string AggregatorStatus() { return Join("aggregator", "status"); }
std::string GridStatus(std::string_view substation_id) {
  return Join("grid", substation_id, "status");
}
std::string VderDispatch(std::string_view vder_id) { return Join("vder", vder_id, "dispatch"); }
std::string VderDispatchResult(std::string_view vder_id) {
  return std::string(kRoot) + "vder/" + std::string(vder_id) + "/dispatch/result";
}
std::string VderStatus(std::string_view vder_id) { return Join("vder", vder_id, "status"); }
std::string VderCurtail(std::string_view vder_id) { return Join("vder", vder_id, "curtail"); }
std::string VderCurtailResult(std::string_view vder_id) {
  return std::string(kRoot) + "vder/" + std::string(vder_id) + "/curtail/result";
}
std::string PriceForecast(std::string_view node) { return Join("forecast", "price", node); }
std::string Event(std::string_view kind) { return Join("events", kind); }

std::string ScheduleRequest() { return Join("schedule", "request"); }
std::string ScheduleResult(std::string_view request_id) {
  return Join("schedule", request_id, "result");
}
std::string AllDers(std::string_view leaf) { return Join("der", "+", leaf); }
std::string Filter(std::string_view relative) { return std::string(kRoot) + std::string(relative); }

}  // namespace derms::topics
