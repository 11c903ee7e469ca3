#include "cloud_aggregator/service/aggregator.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "cloud_aggregator/registry/validation.h"
#include "common/codec.h"
#include "common/topics.h"

namespace derms::aggregator {
namespace {

constexpr const char* kVersion = "0.1.0";
// Most messages taken from the queue at once (one lock) before periodic
// work gets a look in.
constexpr size_t kBurst = 1000;

// Decodes a device-facing (binary) payload. The description naming the DER
// is built only when decoding fails: this runs for every message.
Status DecodeDevice(const std::string& payload, const char* kind, const std::string& der_id,
                    google::protobuf::Message* out) {
  Status s = codec::ParseBinary(payload, "", out);
  if (s.ok()) return s;
  return Status::Error(s.code(), fmt::format("{} from der '{}': {}", kind, der_id, s.message()));
}

}  // namespace

StatusOr<std::unique_ptr<Aggregator>> Aggregator::Create(const AggregatorOptions& options,
                                                         const Clock& clock) {
  Status valid = options.Validate();
  if (!valid.ok()) return valid;
  storage::StoreOptions store_options;
  store_options.path = options.db_path;
  auto store = storage::Store::Open(store_options);
  if (!store.ok()) return store.status();
  auto client = mqtt::Client::Create(options.broker_uri, options.client_id);
  if (!client.ok()) return client.status();
  return std::unique_ptr<Aggregator>(
      new Aggregator(options, clock, std::move(store).value(), std::move(client).value()));
}

Aggregator::Aggregator(const AggregatorOptions& options, const Clock& clock,
                       std::unique_ptr<storage::Store> store, std::unique_ptr<mqtt::Client> client)
    : options_(options),
      clock_(clock),
      store_(std::move(store)),
      client_(std::move(client)),
      session_(
          client_.get(),
          mqtt::SessionOptions{{topics::AllDers("birth"), topics::AllDers("status"),
                                topics::AllDers("telemetry"), topics::AllDers("response"),
                                topics::Filter("grid/+/status"), topics::Filter("vder/+/dispatch")},
                               500,
                               30000,
                               1}),
      inbound_(static_cast<size_t>(options.inbound_queue)),
      started_ms_(clock.NowMs()),
      registry_(registry::RegistryOptions{options.offline_after_intervals, 300, 30000}),
      last_run_id_(store_->last_run_id()) {
  // Paho's thread only hands the message over; the queue bound pushes back on
  // the broker when the processing thread falls behind.
  client_->SetMessageHandler([this](mqtt::Message m) { inbound_.Push(std::move(m)); });
}

Aggregator::~Aggregator() {
  // The handlers write into inbound_ and session_, which die before client_.
  // Closing first wakes a handler blocked on a full queue.
  inbound_.Close();
  client_->ClearHandlers();
}

Stats Aggregator::stats() const {
  Stats s;
  s.accepted = accepted_;
  s.rejected = rejected_;
  s.stale_ignored = stale_ignored_;
  {
    std::lock_guard<std::mutex> lock(reasons_mutex_);
    s.rejected_by_reason = rejected_by_reason_;
  }
  s.ders_known = ders_known_;
  s.ders_online = ders_online_;
  s.dispatch_runs = dispatch_runs_;
  s.controls_sent = controls_sent_;
  s.responses = responses_;
  s.stored = store_->counters().committed + store_->counters().duplicates;
  s.ready = ready_;
  return s;
}

void Aggregator::Run(const std::atomic<bool>& stop) {
  auto prepare = [this](mqtt::ConnectOptions* connect) {
    connect->username = options_.username;
    connect->password = options_.password;
    connect->clean_start = false;
    connect->session_expiry_s = static_cast<uint32_t>(options_.session_expiry_s);
    connect->will = mqtt::Message{
        topics::AggregatorStatus(), StatusJson(false, clock_.NowMs()), 1, true, {}, {}};
    return Status::Ok();
  };
  std::vector<mqtt::Message> batch;
  batch.reserve(kBurst);
  while (!stop) {
    if (session_.Step(prepare) == mqtt::Session::Event::kOnline) {
      spdlog::info("connected to {} as '{}'", options_.broker_uri, options_.client_id);
      // Acknowledged before `ready`, so a late subscriber finds it retained.
      Status s = client_->PublishAndWait(
          mqtt::Message{
              topics::AggregatorStatus(), StatusJson(true, clock_.NowMs()), 1, true, {}, {}},
          std::chrono::milliseconds(5000));
      if (!s.ok()) session_.MarkLost(s.message());
    }
    ready_ = session_.online();
    batch.clear();
    inbound_.WaitAndDrainTo(&batch, kBurst, std::chrono::milliseconds(50));
    int64_t now_ms = clock_.NowMs();
    for (const auto& m : batch) Handle(m, now_ms);
    Periodic(clock_.NowMs());
  }
  // Whatever the broker already handed us is processed before we go.
  while (auto m = inbound_.PopFor(std::chrono::milliseconds(0))) Handle(*m, clock_.NowMs());
  if (session_.online()) {
    Status s = client_->PublishAndWait(
        mqtt::Message{
            topics::AggregatorStatus(), StatusJson(false, clock_.NowMs()), 1, true, {}, {}},
        std::chrono::milliseconds(2000));
    if (!s.ok()) spdlog::warn("offline status not published: {}", s.message());
  }
  client_->Disconnect();
  store_->Flush();
}

void Aggregator::Reject(const Status& s, const std::string& topic) {
  ++rejected_;
  {
    std::lock_guard<std::mutex> lock(reasons_mutex_);
    ++rejected_by_reason_[s.code()];
  }
  rejection_log_.Warn(s.code(), fmt::format("rejected message on '{}': {}", topic, s.message()));
}

void Aggregator::Publish(const std::string& topic, const std::string& payload, bool retained) {
  Status s = client_->Publish(mqtt::Message{topic, payload, 1, retained, {}, {}});
  if (!s.ok()) rejection_log_.Warn("publish_failed", s.message());
}

void Aggregator::Handle(const mqtt::Message& m, int64_t now_ms) {
  auto parsed = topics::Parse(m.topic);
  if (!parsed.ok()) {
    Reject(parsed.status(), m.topic);
    return;
  }
  if (m.payload.empty()) {
    // An empty retained payload clears a retained message: nothing to store.
    Reject(Status::Error("empty_payload", fmt::format("topic '{}': empty payload", m.topic)),
           m.topic);
    return;
  }
  const std::string& id = parsed->id;
  switch (parsed->kind) {
    case topics::Kind::kDerBirth:
      return HandleBirth(id, m, now_ms);
    case topics::Kind::kDerStatus:
      return HandleStatus(id, m, now_ms);
    case topics::Kind::kDerTelemetry:
      return HandleTelemetry(id, m, now_ms);
    case topics::Kind::kDerResponse:
      return HandleResponse(id, m, now_ms);
    case topics::Kind::kGridStatus:
      return HandleGridStatus(id, m, now_ms);
    case topics::Kind::kVderDispatch:
      return HandleDispatchRequest(id, m, now_ms);
    default:
      Reject(Status::Error("unexpected_topic",
                           fmt::format("topic '{}' is not one the aggregator consumes", m.topic)),
             m.topic);
  }
}

void Aggregator::NoteOnlineChange(const registry::DerState& der, bool online,
                                  const std::string& cause, int64_t now_ms) {
  spdlog::info("der '{}' {} ({}, bd_seq {})", der.der_id, online ? "online" : "offline", cause,
               der.bd_seq);
  store_->Add(storage::StatusRecord{der.der_id, online, der.bd_seq, cause, now_ms, now_ms});
  if (der.has_birth) substations_[der.birth.substation_id()].dirty = true;
  ders_online_ = static_cast<uint32_t>(registry_.online_count());
  ders_known_ = static_cast<uint32_t>(registry_.size());
}

void Aggregator::HandleBirth(const std::string& der_id, const mqtt::Message& m, int64_t now_ms) {
  derms::v1::DerBirth birth;
  Status s = DecodeDevice(m.payload, "birth", der_id, &birth);
  if (s.ok()) s = registry::ValidateBirth(birth, der_id);
  if (!s.ok()) return Reject(s, m.topic);
  Accept();
  auto out = registry_.OnBirth(birth, now_ms);
  if (out.stale) {
    ++stale_ignored_;
    return;
  }
  store_->Add(storage::BirthRecord{birth, now_ms});
  const auto* der = registry_.Find(der_id);
  if (out.change == registry::Change::kOnline) NoteOnlineChange(*der, true, "birth", now_ms);
  substations_[birth.substation_id()].dirty = true;
  ders_known_ = static_cast<uint32_t>(registry_.size());
}

void Aggregator::HandleStatus(const std::string& der_id, const mqtt::Message& m, int64_t now_ms) {
  derms::v1::DerStatus status;
  Status s = DecodeDevice(m.payload, "status", der_id, &status);
  if (s.ok()) s = registry::ValidateStatus(status, der_id);
  if (!s.ok()) return Reject(s, m.topic);
  Accept();
  auto out = registry_.OnStatus(status, now_ms);
  if (out.stale) {
    ++stale_ignored_;
    spdlog::info("der '{}': status from older session bd_seq {} ignored", der_id, status.bd_seq());
    return;
  }
  if (out.change != registry::Change::kNone) {
    NoteOnlineChange(*registry_.Find(der_id), status.online(), "status", now_ms);
  }
}

void Aggregator::HandleTelemetry(const std::string& der_id, const mqtt::Message& m,
                                 int64_t now_ms) {
  derms::v1::Telemetry t;
  Status s = DecodeDevice(m.payload, "telemetry", der_id, &t);
  if (s.ok()) s = registry::ValidateTelemetry(t, der_id, now_ms);
  if (!s.ok()) return Reject(s, m.topic);
  Accept();
  auto out = registry_.OnTelemetry(t, now_ms);
  if (out.stale) ++stale_ignored_;
  // Stored whatever its order: the (der_id, seq) key drops true duplicates.
  store_->Add(storage::TelemetryRecord{std::move(t), now_ms});
  const auto* der = registry_.Find(der_id);
  if (out.change == registry::Change::kOnline) NoteOnlineChange(*der, true, "telemetry", now_ms);
  if (out.request_rebirth) {
    SendCommand(der_id, derms::v1::REBIRTH, "telemetry seen without a birth", now_ms);
  }
  if (der->has_birth) substations_[der->birth.substation_id()].dirty = true;
  ders_known_ = static_cast<uint32_t>(registry_.size());
}

void Aggregator::HandleResponse(const std::string& der_id, const mqtt::Message& m, int64_t now_ms) {
  derms::v1::ControlResponse r;
  Status s = DecodeDevice(m.payload, "response", der_id, &r);
  if (s.ok()) s = registry::ValidateResponse(r, der_id);
  if (!s.ok()) return Reject(s, m.topic);
  Accept();
  ++responses_;
  auto it = sent_controls_.find(r.command_id());
  if (it != sent_controls_.end()) {
    SubstationView& view = substations_[it->second.substation_id];
    if (it->second.run_id == view.summary.last_run_id()) {
      (*view.summary.mutable_responses())[derms::v1::ControlStatus_Name(r.status())]++;
      view.dirty = true;
    }
    bool finished = r.status() == derms::v1::COMPLETED || r.status() == derms::v1::REJECTED ||
                    r.status() == derms::v1::SUPERSEDED || r.status() == derms::v1::CANCELLED ||
                    r.status() == derms::v1::EXPIRED;
    if (finished) {
      auto c = controlled_der_.find(der_id);
      if (c != controlled_der_.end() && c->second == r.command_id()) controlled_der_.erase(c);
    }
  }
  store_->Add(storage::ResponseRecord{std::move(r), der_id, now_ms});
}

void Aggregator::HandleGridStatus(const std::string& substation_id, const mqtt::Message& m,
                                  int64_t now_ms) {
  derms::v1::GridStatus g;
  Status s = codec::ParseOperator(
      m.payload, fmt::format("grid status for substation '{}'", substation_id), &g);
  if (s.ok()) s = registry::ValidateGridStatus(g, substation_id);
  if (!s.ok()) return Reject(s, m.topic);
  Accept();
  g.set_substation_id(substation_id);
  if (g.timestamp_ms() == 0) g.set_timestamp_ms(now_ms);
  store_->Add(storage::GridStatusRecord{g, now_ms});
  SubstationView& view = substations_[substation_id];
  view.summary.set_load_kw(g.load_kw());
  view.summary.set_supply_kw(g.supply_kw());
  double imbalance = g.load_kw() - g.supply_kw();
  view.summary.set_imbalance_kw(imbalance);
  view.dirty = true;
  if (!options_.dispatch_enabled) return;
  Dispatch(substation_id, imbalance, 0, options_.control_duration_s, "grid_status", "", now_ms);
}

void Aggregator::HandleDispatchRequest(const std::string& vder_id, const mqtt::Message& m,
                                       int64_t now_ms) {
  derms::v1::DispatchRequest req;
  Status s =
      codec::ParseOperator(m.payload, fmt::format("dispatch request for vder '{}'", vder_id), &req);
  if (s.ok()) s = registry::ValidateDispatchRequest(req, vder_id);
  if (!s.ok()) return Reject(s, m.topic);
  Accept();
  derms::v1::DispatchResult result;
  result.set_request_id(req.request_id());
  result.set_vder_id(vder_id);
  result.set_target_kw(req.target_kw());
  result.set_timestamp_ms(now_ms);
  if (registry_.AtSubstation(vder_id).empty()) {
    // Until configured virtual DERs exist, every substation is one.
    result.set_shortfall_kw(req.target_kw());
    result.set_reason(
        fmt::format("unknown virtual DER '{}': no DER is born under a substation "
                    "of that id",
                    vder_id));
  } else {
    auto split = Dispatch(vder_id, req.target_kw(), req.start_ms(), req.duration_s(),
                          "dispatch_request", req.request_id(), now_ms);
    result.set_allocated_kw(split.covered_kw);
    result.set_shortfall_kw(split.residual_kw);
    result.set_members_dispatched(static_cast<uint32_t>(split.setpoints.size()));
    if (std::abs(split.residual_kw) > options_.deadband_kw) {
      result.set_reason(fmt::format("active DERs can cover {:.1f} kW of {:.1f} kW",
                                    split.covered_kw, req.target_kw()));
    }
  }
  std::string json = codec::ToJson(result);
  Publish(topics::VderDispatchResult(vder_id), json);
  if (!m.response_topic.empty()) {
    Status ps =
        client_->Publish(mqtt::Message{m.response_topic, json, 1, false, {}, m.correlation_data});
    if (!ps.ok()) rejection_log_.Warn("publish_failed", ps.message());
  }
}

std::vector<dispatch::DerCapability> Aggregator::ActiveCapabilities(
    const std::string& substation_id, int64_t now_ms) const {
  std::vector<dispatch::DerCapability> caps;
  for (const registry::DerState* der : registry_.AtSubstation(substation_id)) {
    if (!registry_.IsActive(*der, now_ms)) continue;
    const auto& t = der->last;
    // The device's own view of what it can do now, bounded by its nameplate.
    double max_kw = std::min(t.available_discharge_kw(), der->birth.max_discharge_kw());
    double min_kw = -std::min(t.available_charge_kw(), der->birth.max_charge_kw());
    caps.push_back({der->der_id, std::clamp(t.baseline_kw(), min_kw, max_kw), min_kw, max_kw});
  }
  return caps;
}

dispatch::SplitResult Aggregator::Dispatch(const std::string& substation_id, double target_kw,
                                           int64_t start_ms, int64_t duration_s,
                                           const std::string& trigger,
                                           const std::string& request_id, int64_t now_ms) {
  auto caps = ActiveCapabilities(substation_id, now_ms);
  auto split = dispatch::SplitImbalance(target_kw, caps);
  int64_t run_id = ++last_run_id_;
  ++dispatch_runs_;
  std::set<std::string> dispatched;
  double dispatched_kw = 0;
  if (std::abs(split.needed_kw) >= options_.deadband_kw) {
    for (const auto& sp : split.setpoints) {
      derms::v1::Control c;
      c.set_command_id(fmt::format("r{}-{}", run_id, sp.der_id));
      c.set_issued_at_ms(now_ms);
      c.set_der_id(sp.der_id);
      auto* iv = c.add_intervals();
      iv->set_start_ms(start_ms);
      iv->set_duration_s(static_cast<uint32_t>(duration_s));
      iv->set_target_kw(sp.target_kw);
      Publish(topics::DerControl(sp.der_id), codec::ToBinary(c));
      int64_t begins = start_ms > 0 ? start_ms : now_ms;
      sent_controls_[c.command_id()] = {substation_id, run_id, begins + duration_s * 1000};
      controlled_der_[sp.der_id] = c.command_id();
      dispatched.insert(sp.der_id);
      dispatched_kw += sp.target_kw;
      store_->Add(storage::ControlRecord{std::move(c), sp.der_id, run_id});
      ++controls_sent_;
    }
  }
  // DERs still following an earlier setpoint that this run does not need go
  // back to their default behaviour now rather than when that setpoint ends.
  for (auto it = controlled_der_.begin(); it != controlled_der_.end();) {
    auto sent = sent_controls_.find(it->second);
    bool here = sent != sent_controls_.end() && sent->second.substation_id == substation_id;
    if (here && !dispatched.count(it->first)) {
      SendCommand(it->first, derms::v1::RETURN_TO_DEFAULT,
                  fmt::format("not needed by dispatch run {}", run_id), now_ms);
      it = controlled_der_.erase(it);
    } else {
      ++it;
    }
  }
  // Forget controls that have ended; late responses to them are still stored.
  for (auto it = sent_controls_.begin(); it != sent_controls_.end();) {
    it = it->second.expires_ms + 60000 < now_ms ? sent_controls_.erase(it) : std::next(it);
  }
  store_->Add(storage::DispatchRunRecord{
      run_id, substation_id, trigger, request_id, now_ms, target_kw, split.uncontrolled_kw,
      split.needed_kw, split.headroom_kw, dispatched_kw, split.residual_kw,
      static_cast<uint32_t>(caps.size()), static_cast<uint32_t>(dispatched.size())});
  SubstationView& view = substations_[substation_id];
  auto& sum = view.summary;
  sum.set_dispatch_runs(sum.dispatch_runs() + 1);
  sum.set_last_run_id(run_id);
  sum.set_dispatched_kw(dispatched_kw);
  sum.set_planned_output_kw(split.covered_kw);
  sum.set_residual_kw(split.residual_kw);
  sum.set_controls_sent(static_cast<uint32_t>(dispatched.size()));
  sum.set_last_run_ms(now_ms);
  sum.clear_responses();
  view.dirty = true;
  spdlog::debug(
      "dispatch run {} at '{}' ({}): target {:.1f} kW, uncontrolled {:.1f} kW, "
      "{} setpoints, residual {:.1f} kW",
      run_id, substation_id, trigger, target_kw, split.uncontrolled_kw, dispatched.size(),
      split.residual_kw);
  return split;
}

void Aggregator::SendCommand(const std::string& der_id, derms::v1::NodeCommandType type,
                             const std::string& reason, int64_t now_ms) {
  derms::v1::NodeCommand cmd;
  cmd.set_command(type);
  cmd.set_timestamp_ms(now_ms);
  cmd.set_reason(reason);
  Publish(topics::DerCmd(der_id), codec::ToBinary(cmd));
}

void Aggregator::Periodic(int64_t now_ms) {
  auto wall = std::chrono::steady_clock::now();
  if (wall < next_periodic_) return;
  next_periodic_ = wall + std::chrono::milliseconds(500);
  for (const auto& der_id : registry_.ExpireSilent(now_ms)) {
    NoteOnlineChange(*registry_.Find(der_id), false, "silence", now_ms);
  }
  if (!session_.online()) return;
  PublishSummaries(now_ms);
  if (wall >= next_status_) {
    PublishStatus(true, now_ms);
    next_status_ = wall + std::chrono::seconds(options_.status_interval_s);
  }
}

void Aggregator::PublishStatus(bool online, int64_t now_ms) {
  Publish(topics::AggregatorStatus(), StatusJson(online, now_ms), true);
}

std::string Aggregator::StatusJson(bool online, int64_t now_ms) const {
  Stats s = stats();
  derms::v1::AggregatorStatus st;
  st.set_online(online);
  st.set_timestamp_ms(now_ms);
  st.set_started_at_ms(started_ms_);
  st.set_ders_known(s.ders_known);
  st.set_ders_online(s.ders_online);
  st.set_messages_accepted(s.accepted);
  st.set_messages_rejected(s.rejected);
  for (const auto& [reason, n] : s.rejected_by_reason)
    (*st.mutable_rejected_by_reason())[reason] = n;
  st.set_version(kVersion);
  return codec::ToJson(st);
}

void Aggregator::PublishSummaries(int64_t now_ms) {
  for (auto& [substation_id, view] : substations_) {
    if (!view.dirty) continue;
    view.dirty = false;
    auto& sum = view.summary;
    sum.set_substation_id(substation_id);
    sum.set_timestamp_ms(now_ms);
    uint32_t total = 0, online = 0;
    double output = 0, up = 0, down = 0;
    for (const registry::DerState* der : registry_.AtSubstation(substation_id)) {
      ++total;
      if (!der->online) continue;
      ++online;
      if (!der->has_telemetry) continue;
      output += der->last.active_power_kw();
      up += der->last.available_discharge_kw();
      down += der->last.available_charge_kw();
    }
    sum.set_ders_total(total);
    sum.set_ders_online(online);
    sum.set_output_kw(output);
    sum.set_available_discharge_kw(up);
    sum.set_available_charge_kw(down);
    Publish(topics::SubstationSummary(substation_id), codec::ToJson(sum), true);
  }
}

}  // namespace derms::aggregator
