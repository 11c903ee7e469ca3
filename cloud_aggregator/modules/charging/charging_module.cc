#include "cloud_aggregator/modules/charging/charging_module.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "cloud_aggregator/scheduling/charging_optimizer.h"
#include "common/codec.h"
#include "common/topics.h"

namespace derms::aggregator {
namespace {

constexpr const char* kScheduleCommandPrefix = "sch-";
// Who holds a DER out of dispatch while it follows a schedule.
constexpr const char* kHolder = "charging";
// Schedules kept in memory (for repeats and delivery) before old ones go.
constexpr size_t kSchedulesKept = 10000;
// Devices in one shared-limit request: the LP grows with their overlaps.
constexpr int kMaxDevices = 50;

scheduling::PriceForecast FromWire(const derms::v1::PriceForecast& f) {
  scheduling::PriceForecast out;
  out.node = f.node();
  out.issued_ms = f.issued_ms();
  out.kind = f.kind() == derms::v1::LONG_TERM ? scheduling::ForecastKind::kLongTerm
                                              : scheduling::ForecastKind::kShortTerm;
  for (const auto& iv : f.intervals()) {
    out.intervals.push_back(
        {iv.start_ms(), static_cast<int64_t>(iv.duration_s()), iv.price_per_mwh()});
  }
  return out;
}

Status Invalid(const std::string& request_id, const std::string& message) {
  return Status::Error("invalid_field",
                       fmt::format("schedule request '{}': {}", request_id, message));
}

}  // namespace

void ChargingOptions::Describe(config::OptionSet& set) {
  set.IdMap("schedule.nodes", &nodes,
            "substation_id = \"pricing node\" for requests that name a DER but no node");
  set.Text("schedule.default_node", &default_node, config::OptionSet::TextRule::kId,
           "pricing node of a DER whose substation no entry of schedule.nodes maps");
  set.Int("schedule.control_priority", &control_priority, -1000, 1000,
          "priority of schedule Controls (above dispatch's 0)");
  set.Int("schedule.keep_prices_days", &keep_prices_days, 1, 3650,
          "price forecasts for intervals that ended longer ago are purged");
}

ChargingModule::ChargingModule(const ChargingOptions& options, const ModulePorts& ports,
                               const FleetView& fleet, ControlChannel& controls,
                               controls::ControlLedger& ledger, controls::AvailabilityHolds& holds,
                               Scheduler& scheduler, ResultArchive archive,
                               const std::vector<derms::v1::PriceForecast>& stored)
    : options_(options),
      outbox_(ports.outbox),
      sink_(ports.sink),
      time_(ports.time),
      intake_(ports.intake),
      fleet_(fleet),
      controls_(controls),
      ledger_(ledger),
      holds_(holds),
      scheduler_(scheduler),
      archive_(std::move(archive)) {
  size_t loaded = 0;
  for (const auto& f : stored) {
    scheduling::PriceForecast forecast = FromWire(f);
    // Stored rows passed validation when they arrived; a row edited by hand
    // since is skipped rather than trusted.
    if (!scheduling::ValidateForecast(forecast).ok()) continue;
    price_book_.Merge(forecast);
    ++loaded;
  }
  price_book_.Purge(time_.NowMs(), options_.keep_prices_days * 86400 * 1000);
  if (loaded > 0) {
    spdlog::info("price book: {} stored forecasts for {} nodes", loaded,
                 price_book_.Nodes().size());
  }
}

void ChargingModule::OnMessage(const Inbound& m, int64_t now_ms) {
  if (m.parsed.kind == topics::Kind::kForecast) return OnPriceForecast(m, now_ms);
  if (m.parsed.kind == topics::Kind::kScheduleRequest) return OnScheduleRequest(m, now_ms);
}

void ChargingModule::OnPriceForecast(const Inbound& m, int64_t now_ms) {
  const std::string& kind = m.parsed.id;
  const std::string& node = m.parsed.key;
  if (kind != "price") {
    return intake_.Reject(
        Status::Error("unsupported_forecast",
                      fmt::format("topic '{}': forecast kind '{}' is not consumed "
                                  "(only forecast/price/{{node}})",
                                  m.topic, kind)),
        m.topic);
  }
  derms::v1::PriceForecast f;
  Status s = codec::ParseOperator(m.payload, fmt::format("price forecast for node '{}'", node), &f);
  if (s.ok() && !f.node().empty() && f.node() != node) {
    s = Status::Error("id_mismatch", fmt::format("price forecast on '{}': node '{}' in the payload",
                                                 m.topic, f.node()));
  }
  f.set_node(node);
  scheduling::PriceForecast forecast = FromWire(f);
  if (s.ok()) s = scheduling::ValidateForecast(forecast);
  if (!s.ok()) return intake_.Reject(s, m.topic);
  intake_.Accept();
  auto merged = price_book_.Merge(forecast);
  int64_t keep_ms = options_.keep_prices_days * 86400 * 1000;
  price_book_.Purge(now_ms, keep_ms);
  sink_.Add(storage::PriceForecastRecord{std::move(f), now_ms});
  sink_.Add(storage::PurgePricesRecord{now_ms - keep_ms});
  spdlog::debug("price forecast for '{}' issued {}: {} intervals in, {} under newer forecasts",
                node, forecast.issued_ms, merged.intervals_added, merged.intervals_ignored);
}

void ChargingModule::OnRefused(const Inbound& m, const Status& why, int64_t now_ms) {
  if (m.parsed.kind != topics::Kind::kScheduleRequest || m.reply_to.topic.empty()) return;
  derms::v1::ScheduleResult refused;
  refused.set_status(derms::v1::SCHEDULE_FAILED);
  refused.set_reason(why.message());
  Publish(refused, m.reply_to, now_ms, false);
}

void ChargingModule::OnScheduleRequest(const Inbound& m, int64_t now_ms) {
  ScheduleEntry entry;
  entry.received_ms = now_ms;
  derms::v1::ScheduleRequest& q = entry.request;
  Status s = codec::ParseOperator(m.payload, "schedule request", &q);
  if (s.ok() && !q.request_id().empty() && !topics::IsValidId(q.request_id())) {
    s = Invalid(q.request_id(), "request_id must match [A-Za-z0-9_-]{1,64}");
    q.clear_request_id();
  }
  if (!s.ok()) {
    intake_.Reject(s, m.topic);
    // Answered where the requester listens, when it said where.
    derms::v1::ScheduleResult refused;
    refused.set_request_id(q.request_id());
    refused.set_status(derms::v1::SCHEDULE_FAILED);
    refused.set_reason(s.message());
    if (!m.reply_to.topic.empty()) {
      Publish(refused, m.reply_to, now_ms, false);
    }
    return;
  }
  if (q.request_id().empty())
    q.set_request_id(fmt::format("sched-{}-{}", now_ms, ++schedules_made_));
  // A repeated request, or one carrying nothing but an earlier request's id,
  // is answered with that request's result: how a result is fetched again.
  auto known = schedules_.find(q.request_id());
  if (known != schedules_.end()) {
    intake_.Accept();
    return Publish(known->second.result, m.reply_to, now_ms);
  }
  bool lookup = q.max_charge_kw() == 0 && q.energy_kwh() == 0 && q.devices_size() == 0 &&
                q.node().empty() && q.der_id().empty();
  if (lookup) {
    intake_.Accept();
    // Older results are in SQLite: read on the background executor, never
    // on this thread; answered when the read completes.
    scheduler_.Once(
        [this, id = q.request_id(), reply_to = m.reply_to](int64_t) -> Scheduler::Completion {
          std::optional<derms::v1::ScheduleResult> stored = archive_(id);
          return [this, id, reply_to, stored = std::move(stored)] {
            derms::v1::ScheduleResult found;
            if (stored) {
              found = *stored;
            } else {
              found.set_request_id(id);
              found.set_status(derms::v1::SCHEDULE_FAILED);
              found.set_reason(fmt::format("no schedule request '{}' is known", id));
            }
            Publish(found, reply_to, time_.NowMs());
          };
        },
        now_ms);
    return;
  }
  derms::v1::ScheduleResult& result = entry.result;
  result.set_request_id(q.request_id());
  result.set_der_id(q.der_id());
  result.set_status(derms::v1::SCHEDULE_RECEIVED);
  sink_.Add(storage::ScheduleRecord{q, result, entry.received_ms, now_ms});
  Solve(entry, now_ms);
  if (result.status() == derms::v1::SCHEDULE_FAILED) {
    intake_.Reject(
        Status::Error("invalid_schedule_request",
                      fmt::format("schedule request '{}': {}", q.request_id(), result.reason())),
        m.topic);
  } else {
    intake_.Accept();
  }
  sink_.Add(storage::ScheduleRecord{q, result, entry.received_ms, now_ms});
  const std::string id = q.request_id();
  Publish(entry.result, m.reply_to, now_ms);
  Keep(id, std::move(entry));
}

namespace {

// One device's need from its request fields; errors name the field.
Status NeedFrom(const derms::v1::ScheduleRequest& q, const std::string& where, int64_t now_ms,
                scheduling::ChargeNeed* need) {
  need->max_charge_kw = q.max_charge_kw();
  need->energy_kwh = q.energy_kwh();
  need->earliest_start_ms = q.earliest_start_ms();
  need->ready_by_ms = q.ready_by_ms();
  if (q.has_soc_pct()) need->soc_pct = q.soc_pct();
  if (q.has_capacity_kwh()) need->capacity_kwh = q.capacity_kwh();
  if (q.has_efficiency()) need->efficiency = q.efficiency();
  if (q.has_undelivered_price_per_mwh()) {
    need->undelivered_price_per_mwh = q.undelivered_price_per_mwh();
  }
  if (!q.der_id().empty() && !topics::IsValidId(q.der_id())) {
    return Status::Error("invalid_field",
                         fmt::format("{}der_id must match [A-Za-z0-9_-]{{1,64}}", where));
  }
  if (q.devices_size() > 0 && !where.empty()) {
    return Status::Error("invalid_field", where + "devices: a device may not have devices");
  }
  if (!where.empty() && q.import_limit_kw() != 0) {
    return Status::Error("invalid_field",
                         where + "import_limit_kw: given per request, not per device");
  }
  Status s = scheduling::ValidateNeedAt(*need, now_ms);
  if (!s.ok()) return Status::Error(s.code(), where + s.message());
  return Status::Ok();
}

void Fill(const scheduling::ChargingSchedule& plan, derms::v1::ScheduleResult* r) {
  r->set_status(derms::v1::SCHEDULE_SOLVED);
  for (const auto& slot : plan.slots) {
    auto* out = r->add_slots();
    out->set_start_ms(slot.start_ms);
    out->set_duration_s(static_cast<uint32_t>(slot.duration_s));
    out->set_price_per_mwh(slot.price_per_mwh);
    out->set_power_kw(slot.power_kw);
  }
  r->set_energy_kwh(plan.energy_kwh);
  r->set_grid_energy_kwh(plan.grid_energy_kwh);
  r->set_cost(plan.cost);
  r->set_immediate_cost(plan.immediate_cost);
  r->set_shortfall_kwh(plan.shortfall_kwh);
  r->set_undelivered_cost(plan.undelivered_cost);
  r->set_reason(plan.reason);
}

void AddReason(derms::v1::ScheduleResult* r, const std::string& more) {
  r->set_reason(r->reason().empty() ? more : r->reason() + "; " + more);
}

// One Control for a device's whole schedule: runs of equal power are one
// interval, and zero-power intervals stay explicit so the device does not
// fall back to charging on its own in between. Intervals already over are
// left out (an edge rejects them).
derms::v1::Control ScheduleControl(const derms::v1::ScheduleResult& r,
                                   const std::string& command_id, int32_t priority,
                                   int64_t now_ms) {
  derms::v1::Control c;
  c.set_command_id(command_id);
  c.set_issued_at_ms(now_ms);
  c.set_der_id(r.der_id());
  c.set_priority(priority);
  for (const auto& slot : r.slots()) {
    int64_t end_ms = slot.start_ms() + int64_t{slot.duration_s()} * 1000;
    if (end_ms <= now_ms || slot.duration_s() == 0) continue;
    double target_kw = -slot.power_kw();
    int n = c.intervals_size();
    if (n > 0) {
      auto* last = c.mutable_intervals(n - 1);
      bool contiguous = last->start_ms() + int64_t{last->duration_s()} * 1000 == slot.start_ms();
      if (contiguous && std::abs(last->target_kw() - target_kw) < 1e-9) {
        last->set_duration_s(last->duration_s() + slot.duration_s());
        continue;
      }
    }
    auto* iv = c.add_intervals();
    iv->set_start_ms(slot.start_ms());
    iv->set_duration_s(slot.duration_s());
    iv->set_target_kw(target_kw);
  }
  return c;
}

}  // namespace

void ChargingModule::Solve(ScheduleEntry& entry, int64_t now_ms) {
  const derms::v1::ScheduleRequest& q = entry.request;
  derms::v1::ScheduleResult& result = entry.result;
  auto fail = [&result](const std::string& reason) {
    result.set_status(derms::v1::SCHEDULE_FAILED);
    result.set_reason(reason);
  };
  bool shared = q.devices_size() > 0;
  std::vector<const derms::v1::ScheduleRequest*> devices;
  if (shared) {
    for (const auto& d : q.devices()) devices.push_back(&d);
  } else {
    devices.push_back(&q);
  }
  if (q.devices_size() > kMaxDevices) {
    return fail(
        fmt::format("devices: {} given, at most {} per request", q.devices_size(), kMaxDevices));
  }
  std::vector<scheduling::ChargeNeed> needs(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    Status s =
        NeedFrom(*devices[i], shared ? fmt::format("devices[{}]: ", i) : "", now_ms, &needs[i]);
    if (!s.ok()) return fail(s.message());
  }
  if (shared) {
    if (Status s = scheduling::ValidateImportLimit(q.import_limit_kw()); !s.ok()) {
      return fail(s.message() + " (required with devices)");
    }
  } else if (q.import_limit_kw() != 0) {
    return fail(
        fmt::format("import_limit_kw {} is only for a request with devices", q.import_limit_kw()));
  }
  // The pricing node: given, else the first device's DER's substation's,
  // else the default.
  std::string node = q.node();
  const std::string& first_der = devices[0]->der_id();
  const registry::DerState* der = first_der.empty() ? nullptr : fleet_.Find(first_der);
  if (node.empty() && der != nullptr && der->has_birth) {
    auto mapped = options_.nodes.find(der->birth.substation_id());
    node = mapped != options_.nodes.end() ? mapped->second : options_.default_node;
  }
  if (node.empty()) {
    return fail(first_der.empty()
                    ? "node is required (or a der_id known to the aggregator)"
                    : fmt::format("node is required: der '{}' is {} and no [schedule] node maps "
                                  "its substation",
                                  first_der, der ? "known" : "not known"));
  }
  if (!topics::IsValidId(node)) return fail("node must match [A-Za-z0-9_-]{1,64}");
  result.set_node(node);
  if (!price_book_.HasNode(node)) {
    return fail(fmt::format("node '{}' has no price forecast (forecast/price/{})", node, node));
  }
  int64_t from_ms = needs[0].earliest_start_ms, to_ms = needs[0].ready_by_ms;
  for (const auto& n : needs) {
    from_ms = std::min(from_ms, n.earliest_start_ms);
    to_ms = std::max(to_ms, n.ready_by_ms);
  }
  auto prices = price_book_.Window(node, from_ms, to_ms);
  if (!prices.ok()) return fail(prices.status().message());

  if (!shared) {
    Fill(scheduling::OptimizeSingle(needs[0], *prices), &result);
  } else {
    auto plans = scheduling::OptimizeShared(needs, q.import_limit_kw(), *prices);
    if (!plans.ok()) return fail(plans.status().message());
    result.set_status(derms::v1::SCHEDULE_SOLVED);
    for (size_t i = 0; i < plans->size(); ++i) {
      derms::v1::ScheduleResult* d = result.add_devices();
      d->set_request_id(q.request_id());
      d->set_node(node);
      d->set_der_id(devices[i]->der_id());
      Fill((*plans)[i], d);
      result.set_energy_kwh(result.energy_kwh() + d->energy_kwh());
      result.set_grid_energy_kwh(result.grid_energy_kwh() + d->grid_energy_kwh());
      result.set_cost(result.cost() + d->cost());
      result.set_immediate_cost(result.immediate_cost() + d->immediate_cost());
      result.set_shortfall_kwh(result.shortfall_kwh() + d->shortfall_kwh());
      result.set_undelivered_cost(result.undelivered_cost() + d->undelivered_cost());
      if (!d->reason().empty()) AddReason(&result, fmt::format("devices[{}]: {}", i, d->reason()));
    }
  }

  // Carry it out: each device naming a DER (unless told not to) gets its
  // schedule as one Control.
  for (size_t i = 0; i < devices.size(); ++i) {
    const derms::v1::ScheduleRequest& dq = *devices[i];
    derms::v1::ScheduleResult* dr = shared ? result.mutable_devices(static_cast<int>(i)) : &result;
    bool execute = dq.has_execute() ? dq.execute() : (q.has_execute() ? q.execute() : true);
    if (dq.der_id().empty() || !execute) continue;
    const registry::DerState* target = fleet_.Find(dq.der_id());
    if (target == nullptr || !target->has_birth) {
      AddReason(dr, fmt::format("not sent: der '{}' has no birth here", dq.der_id()));
      continue;
    }
    std::string command_id =
        kScheduleCommandPrefix + q.request_id() + (shared ? fmt::format("-{}", i) : std::string());
    derms::v1::Control c =
        ScheduleControl(*dr, command_id, static_cast<int32_t>(options_.control_priority), now_ms);
    if (c.intervals_size() == 0) {
      AddReason(dr, "not sent: the window is already over");
      continue;
    }
    dr->set_command_id(command_id);
    commands_[command_id] = q.request_id();
    const auto& last = c.intervals(c.intervals_size() - 1);
    // Out of dispatch until the schedule ends; the schedule outranks any
    // dispatch setpoint, which is no longer ours to release (a
    // return-to-default would cancel the schedule).
    holds_.Place(dq.der_id(),
                 controls::Hold{kHolder, last.start_ms() + int64_t{last.duration_s()} * 1000,
                                fmt::format("following charging schedule '{}'", q.request_id())});
    ledger_.Yield(dq.der_id());
    controls_.SendControl(std::move(c), dq.der_id(), 0);
  }
}

void ChargingModule::OnControlResponse(const std::string& /*der_id*/,
                                       const derms::v1::ControlResponse& r, int64_t now_ms) {
  auto command = commands_.find(r.command_id());
  if (command == commands_.end()) return;
  auto entry = schedules_.find(command->second);
  if (entry == schedules_.end()) return;
  derms::v1::ScheduleResult& result = entry->second.result;
  // The result this control carries out: the whole one, or one device's.
  derms::v1::ScheduleResult* target = &result;
  for (auto& d : *result.mutable_devices()) {
    if (d.command_id() == r.command_id()) target = &d;
  }
  switch (r.status()) {
    case derms::v1::RECEIVED:
    case derms::v1::APPLIED:
    case derms::v1::CLAMPED:
      if (target->status() != derms::v1::SCHEDULE_SOLVED) return;
      target->set_status(derms::v1::SCHEDULE_DELIVERED);
      if (r.status() == derms::v1::CLAMPED) AddReason(target, "clamped by the DER: " + r.reason());
      break;
    case derms::v1::REJECTED:
      holds_.Release(target->der_id(), kHolder);
      target->set_status(derms::v1::SCHEDULE_FAILED);
      target->set_reason(
          fmt::format("der '{}' rejected the schedule: {}", target->der_id(), r.reason()));
      commands_.erase(command);
      break;
    case derms::v1::COMPLETED:
    case derms::v1::SUPERSEDED:
    case derms::v1::CANCELLED:
    case derms::v1::EXPIRED:
      commands_.erase(command);  // its story is told by the responses table
      return;
    default:
      return;
  }
  if (target != &result) {
    // Shared: delivered once every device sent a schedule has answered.
    bool pending = false, failed = false;
    for (const auto& d : result.devices()) {
      if (d.command_id().empty()) continue;
      pending |= d.status() == derms::v1::SCHEDULE_SOLVED;
      failed |= d.status() == derms::v1::SCHEDULE_FAILED;
    }
    if (pending) return;
    result.set_status(failed ? derms::v1::SCHEDULE_FAILED : derms::v1::SCHEDULE_DELIVERED);
    if (failed) AddReason(&result, "a device rejected its schedule");
  }
  sink_.Add(
      storage::ScheduleRecord{entry->second.request, result, entry->second.received_ms, now_ms});
  Publish(result, ReplyTo{}, now_ms);
}

void ChargingModule::Keep(const std::string& id, ScheduleEntry entry) {
  schedules_[id] = std::move(entry);
  // Memory keeps the most recent requests (for repeats and deliveries);
  // older ones are answered from SQLite.
  schedule_order_.push_back(id);
  while (schedule_order_.size() > kSchedulesKept) {
    auto old = schedules_.find(schedule_order_.front());
    schedule_order_.pop_front();
    if (old == schedules_.end()) continue;
    commands_.erase(old->second.result.command_id());
    for (const auto& d : old->second.result.devices()) commands_.erase(d.command_id());
    schedules_.erase(old);
  }
}

void ChargingModule::Publish(const derms::v1::ScheduleResult& result,
                             const ReplyTo& reply_to, int64_t now_ms, bool on_result_topic) {
  derms::v1::ScheduleResult stamped = result;
  stamped.set_timestamp_ms(now_ms);
  std::string json = codec::ToOperatorJson(stamped);
  if (on_result_topic) outbox_.Publish(topics::ScheduleResult(stamped.request_id()), json);
  outbox_.Reply(reply_to, json);
}

}  // namespace derms::aggregator
