#include "edge_agent/agent/edge_agent.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>

#include "common/codec.h"
#include "common/topics.h"
#include "edge_agent/outbox/sqlite_storage.h"

namespace derms::edge {
namespace {
// Responses are few; a long outage should not grow them without bound.
constexpr size_t kMaxBufferedResponses = 1000;
constexpr uint32_t kSessionExpiryS = 3600;
// Outbox records published and not yet acknowledged, at most.
constexpr size_t kOutboxWindow = 64;
// A publish unanswered this long is taken as failed and sent again.
constexpr auto kPublishTimeout = std::chrono::seconds(30);
}  // namespace

StatusOr<std::unique_ptr<EdgeAgent>> EdgeAgent::Create(const AgentOptions& options,
                                                       std::unique_ptr<Device> device) {
  Status valid = options.Validate();
  if (!valid.ok()) return valid;
  if (!device) return Status::Error("invalid_value", "no device for der " + options.der_id);
  auto store = StateStore::Open(options.state_dir, options.der_id);
  if (!store.ok()) return store.status();
  std::unique_ptr<Outbox> outbox;
  if (options.outbox == "sqlite") {
    // The state directory exists: StateStore::Open made it.
    std::string path = options.outbox_path.empty()
                           ? options.state_dir + "/" + options.der_id + ".outbox.sqlite"
                           : options.outbox_path;
    auto storage = SqliteOutboxStorage::Open(path);
    if (!storage.ok()) return storage.status();
    outbox = std::make_unique<Outbox>(
        std::move(storage).value(),
        OutboxLimits{options.outbox_max_rows, options.outbox_max_bytes, options.outbox_max_age_s});
    OutboxTotals held = outbox->totals();
    if (held.rows > 0) {
      spdlog::info("der '{}': {} samples wait in outbox '{}' from an earlier run", options.der_id,
                   held.rows, path);
    }
  }
  auto client = mqtt::Client::Create(options.broker_uri, "edge-" + options.der_id);
  if (!client.ok()) return client.status();
  return std::unique_ptr<EdgeAgent>(new EdgeAgent(options, std::move(device), std::move(*store),
                                                  std::move(client).value(), std::move(outbox)));
}

EdgeAgent::EdgeAgent(const AgentOptions& options, std::unique_ptr<Device> device, StateStore store,
                     std::unique_ptr<mqtt::Client> client, std::unique_ptr<Outbox> outbox)
    : options_(options),
      device_(std::move(device)),
      state_store_(std::move(store)),
      client_(std::move(client)),
      engine_(options.der_id),
      session_(
          client_.get(),
          mqtt::SessionOptions{{topics::DerControl(options.der_id), topics::DerCmd(options.der_id)},
                               options.reconnect_min_ms,
                               options.reconnect_max_ms,
                               static_cast<uint32_t>(std::hash<std::string>{}(options.der_id))}),
      outbox_(std::move(outbox)) {
  // Drops of earlier runs were counted and reported by them.
  if (outbox_) dropped_reported_ = dropped_logged_ = outbox_->totals().dropped;
  client_->SetMessageHandler([this](mqtt::Message m) {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    inbox_.push_back(std::move(m));
  });
}

EdgeAgent::~EdgeAgent() {
  // The handlers write into inbox_ and session_, which die before client_.
  client_->ClearHandlers();
}

void EdgeAgent::Tick(int64_t now_ms) {
  auto event =
      session_.Step([&](mqtt::ConnectOptions* connect) { return PrepareConnect(now_ms, connect); });
  if (event == mqtt::Session::Event::kOnline) {
    ++counters_.connects;
    // Whatever was in flight on the last connection is sent again.
    if (outbox_) {
      in_flight_.clear();
      outbox_->ConnectionLost();
    }
    GoOnline(now_ms);
  }
  HandleInbox(now_ms);
  Respond(Confirm(engine_.Advance(now_ms, device_->Range()), now_ms));
  device_->Step(now_ms, SetpointNow());
  if (outbox_ && !outbox_checked_) {
    // Samples an earlier run kept may have aged past the cap since.
    outbox_checked_ = true;
    Status s = outbox_->Enforce(now_ms);
    if (!s.ok()) spdlog::error("der '{}': {}", options_.der_id, s.message());
  }
  // Sampling starts with the first session (with a SQLite outbox, at once:
  // what the agent sees before it first reaches the broker is kept too);
  // from then on it never stops, and what cannot be sent is kept as historical.
  if ((counters_.connects > 0 || outbox_) && now_ms >= next_telemetry_ms_) {
    SendTelemetry(now_ms);
    next_telemetry_ms_ = now_ms + options_.telemetry_interval_s * 1000;
  }
  if (outbox_) PumpOutbox(now_ms);
}

std::optional<double> EdgeAgent::SetpointNow() const {
  std::optional<double> setpoint = engine_.Setpoint();
  if (!setpoint && options_.default_mode == "fixed") {
    PowerRange r = device_->Range();
    setpoint = std::clamp(options_.default_setpoint_kw, r.min_kw, r.max_kw);
  }
  // Under a generation limit the device does what it would otherwise do,
  // held down to the cap when that would export more.
  if (auto cap = engine_.GenerationLimit()) {
    double would_kw = setpoint ? *setpoint : device_->BaselineKw();
    if (would_kw > *cap) return *cap;
  }
  return setpoint;
}

derms::v1::DerStatus EdgeAgent::StatusMessage(bool online, int64_t now_ms) const {
  derms::v1::DerStatus s;
  s.set_der_id(options_.der_id);
  s.set_online(online);
  s.set_bd_seq(state_store_.bd_seq());
  s.set_timestamp_ms(now_ms);
  return s;
}

Status EdgeAgent::PrepareConnect(int64_t now_ms, mqtt::ConnectOptions* connect) {
  auto bd_seq = state_store_.NextBdSeq();
  if (!bd_seq.ok()) return bd_seq.status();
  connect->username = options_.username;
  connect->password = options_.password;
  connect->ca_file = options_.ca_file;
  connect->cert_file = options_.cert_file;
  connect->key_file = options_.key_file;
  connect->clean_start = false;
  connect->session_expiry_s = kSessionExpiryS;
  connect->will = mqtt::Message{topics::DerStatus(options_.der_id),
                                codec::ToBinary(StatusMessage(false, now_ms)),
                                1,
                                true,
                                {},
                                {}};
  return Status::Ok();
}

void EdgeAgent::GoOnline(int64_t now_ms) {
  derms::v1::DerBirth birth;
  birth.set_der_id(options_.der_id);
  birth.set_bd_seq(state_store_.bd_seq());
  birth.set_der_type(options_.nameplate.type);
  birth.set_max_discharge_kw(options_.nameplate.max_discharge_kw);
  birth.set_max_charge_kw(options_.nameplate.max_charge_kw);
  birth.set_energy_capacity_kwh(options_.nameplate.energy_capacity_kwh);
  birth.set_substation_id(options_.substation_id);
  birth.set_feeder_id(options_.feeder_id);
  birth.set_feeder_node(options_.feeder_node);
  birth.set_provider_id(options_.provider_id);
  birth.set_latitude(options_.nameplate.latitude);
  birth.set_longitude(options_.nameplate.longitude);
  for (const auto& tag : options_.tags) birth.add_tags(tag);
  birth.set_timestamp_ms(now_ms);
  birth.set_telemetry_interval_s(static_cast<uint32_t>(options_.telemetry_interval_s));
  birth.set_model(options_.model);
  if (!Send(topics::DerBirth(options_.der_id), codec::ToBinary(birth), 1, true) ||
      !Send(topics::DerStatus(options_.der_id), codec::ToBinary(StatusMessage(true, now_ms)), 1,
            true)) {
    session_.MarkLost("birth could not be published");
    return;
  }
  spdlog::info("der '{}' online with bd_seq {}", options_.der_id, state_store_.bd_seq());
  FlushBuffers();
}

bool EdgeAgent::Send(const std::string& topic, const std::string& payload, int qos, bool retained) {
  if (!session_.online()) return false;
  Status s = client_->Publish(mqtt::Message{topic, payload, qos, retained, {}, {}});
  if (!s.ok()) {
    spdlog::debug("der '{}': {}", options_.der_id, s.ToString());
    return false;
  }
  return true;
}

void EdgeAgent::HandleInbox(int64_t now_ms) {
  std::vector<mqtt::Message> messages;
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    messages.swap(inbox_);
  }
  for (const auto& m : messages) {
    if (m.topic == topics::DerControl(options_.der_id)) {
      HandleControl(m, now_ms);
    } else if (m.topic == topics::DerCmd(options_.der_id)) {
      HandleCommand(m, now_ms);
    } else {
      ++counters_.bad_messages;
      spdlog::warn("der '{}': message on unexpected topic '{}' ignored", options_.der_id, m.topic);
    }
  }
}

void EdgeAgent::HandleControl(const mqtt::Message& m, int64_t now_ms) {
  ++counters_.controls_received;
  derms::v1::Control control;
  Status s =
      codec::ParseBinary(m.payload, fmt::format("control for der '{}'", options_.der_id), &control);
  if (!s.ok()) {
    // Without a command_id there is nobody to answer; the reason is logged.
    ++counters_.bad_messages;
    spdlog::warn("{}", s.message());
    return;
  }
  Respond(Confirm(engine_.OnControl(control, now_ms, device_->Range()), now_ms));
}

void EdgeAgent::HandleCommand(const mqtt::Message& m, int64_t now_ms) {
  derms::v1::NodeCommand cmd;
  Status s = codec::ParseBinary(m.payload, fmt::format("cmd for der '{}'", options_.der_id), &cmd);
  if (!s.ok()) {
    ++counters_.bad_messages;
    spdlog::warn("{}", s.message());
    return;
  }
  switch (cmd.command()) {
    case derms::v1::REBIRTH:
      if (session_.online()) GoOnline(now_ms);
      return;
    case derms::v1::RETURN_TO_DEFAULT:
      Respond(engine_.Cancel(now_ms,
                             cmd.reason().empty() ? "return to default requested" : cmd.reason()));
      return;
    default:
      ++counters_.bad_messages;
      spdlog::warn("der '{}': cmd {} is not one this agent knows", options_.der_id,
                   static_cast<int>(cmd.command()));
  }
}

ControlEngine::Responses EdgeAgent::Confirm(ControlEngine::Responses responses, int64_t now_ms) {
  const std::string active = engine_.ActiveCommandId();
  auto starts_active = [&active](const derms::v1::ControlResponse& r) {
    return r.command_id() == active &&
           (r.status() == derms::v1::APPLIED || r.status() == derms::v1::CLAMPED);
  };
  if (active.empty() || std::none_of(responses.begin(), responses.end(), starts_active)) {
    return responses;
  }
  Status s = device_->Apply(now_ms, SetpointNow());
  if (s.ok()) return responses;
  spdlog::warn("der '{}': control '{}' refused by the device: {}", options_.der_id, active,
               s.message());
  responses.erase(std::remove_if(responses.begin(), responses.end(), starts_active),
                  responses.end());
  for (auto& r : engine_.Refuse(now_ms, s.message())) responses.push_back(std::move(r));
  return responses;
}

void EdgeAgent::Respond(const ControlEngine::Responses& responses) {
  for (const auto& r : responses) {
    if (Send(topics::DerResponse(options_.der_id), codec::ToBinary(r), 1, false)) {
      ++counters_.responses_sent;
    } else {
      if (response_buffer_.size() >= kMaxBufferedResponses) response_buffer_.pop_front();
      response_buffer_.push_back(r);
    }
  }
}

void EdgeAgent::SendTelemetry(int64_t now_ms) {
  auto seq = state_store_.NextSeq();
  if (!seq.ok()) {
    spdlog::error("der '{}': {}", options_.der_id, seq.status().ToString());
    return;
  }
  Reading reading = device_->Read();
  PowerRange range = device_->Range();
  derms::v1::Telemetry t;
  t.set_der_id(options_.der_id);
  t.set_seq(*seq);
  t.set_timestamp_ms(now_ms);
  t.set_active_power_kw(reading.active_power_kw);
  t.set_reactive_power_kvar(reading.reactive_power_kvar);
  if (reading.soc_pct) t.set_soc_pct(*reading.soc_pct);
  t.set_voltage_v(reading.voltage_v);
  t.set_frequency_hz(reading.frequency_hz);
  if (auto sp = engine_.Setpoint()) t.set_setpoint_kw(*sp);
  t.set_run_time_s(reading.run_time_s);
  for (auto& a : reading.alarms) *t.add_alarms() = std::move(a);
  t.set_available_discharge_kw(std::max(0.0, range.max_kw));
  t.set_available_charge_kw(std::max(0.0, -range.min_kw));
  t.set_baseline_kw(device_->BaselineKw());
  t.set_command_id(engine_.ActiveCommandId());
  if (outbox_) {
    KeepInOutbox(t, now_ms);
    return;
  }
  if (Send(topics::DerTelemetry(options_.der_id), codec::ToBinary(t),
           static_cast<int>(options_.telemetry_qos), false)) {
    ++counters_.telemetry_sent;
    return;
  }
  if (options_.offline_buffer == 0) return;
  t.set_is_historical(true);
  if (telemetry_buffer_.size() >= static_cast<size_t>(options_.offline_buffer)) {
    telemetry_buffer_.pop_front();
    ++counters_.telemetry_dropped;
  }
  telemetry_buffer_.push_back(std::move(t));
  ++counters_.telemetry_buffered;
}

void EdgeAgent::FlushBuffers() {
  while (!response_buffer_.empty() && Send(topics::DerResponse(options_.der_id),
                                           codec::ToBinary(response_buffer_.front()), 1, false)) {
    response_buffer_.pop_front();
    ++counters_.responses_sent;
  }
  // Historical telemetry goes at QoS 1 whatever the live QoS: it was kept to arrive.
  while (!telemetry_buffer_.empty() && Send(topics::DerTelemetry(options_.der_id),
                                            codec::ToBinary(telemetry_buffer_.front()), 1, false)) {
    telemetry_buffer_.pop_front();
    ++counters_.telemetry_sent;
  }
}

void EdgeAgent::KeepInOutbox(derms::v1::Telemetry& t, int64_t now_ms) {
  if (drop_alarm_due_) {
    drop_alarm_due_ = false;
    derms::v1::Alarm* a = t.add_alarms();
    a->set_code("telemetry_dropped");
    a->set_severity(derms::v1::WARNING);
    a->set_message(fmt::format(
        "{} samples dropped from the edge outbox so far, oldest first (caps: {} samples, {} "
        "bytes, {} s)",
        dropped_reported_, options_.outbox_max_rows, options_.outbox_max_bytes,
        options_.outbox_max_age_s));
  }
  // Kept before it is published: a sample in flight when the connection or
  // the process dies is sent again.
  std::string payload = codec::ToBinary(t);
  auto id = outbox_->Add(t.seq(), t.timestamp_ms(), payload, now_ms);
  OutboxTotals totals = outbox_->totals();
  if (totals.dropped > dropped_reported_) {
    uint64_t n = totals.dropped - dropped_reported_;
    counters_.telemetry_dropped += n;
    dropped_reported_ = totals.dropped;
    drop_alarm_due_ = true;
    // One line a minute at most while it goes on: a long outage drops one a sample.
    auto now = std::chrono::steady_clock::now();
    if (dropped_logged_ == 0 || now - drop_logged_at_ >= std::chrono::minutes(1)) {
      spdlog::warn(
          "der '{}': outbox full, {} oldest samples dropped since the last report ({} since the "
          "outbox began)",
          options_.der_id, totals.dropped - dropped_logged_, totals.dropped);
      dropped_logged_ = totals.dropped;
      drop_logged_at_ = now;
    }
  }
  if (!id.ok()) {
    // The disk is failing: the sample still goes out live if it can.
    if (!outbox_failing_) spdlog::error("der '{}': {}", options_.der_id, id.status().message());
    outbox_failing_ = true;
    if (Send(topics::DerTelemetry(options_.der_id), payload,
             static_cast<int>(options_.telemetry_qos), false)) {
      ++counters_.telemetry_sent;
    }
    return;
  }
  if (outbox_failing_) spdlog::info("der '{}': outbox writes work again", options_.der_id);
  outbox_failing_ = false;
  // Live even while a backlog drains (the window bounds the backlog only):
  // the cloud judges silence by live samples.
  if (session_.online()) {
    outbox_->MarkInFlight(*id);
    in_flight_.push_back(
        InFlight{*id, false,
                 client_->StartPublish(mqtt::Message{topics::DerTelemetry(options_.der_id),
                                                     payload,
                                                     static_cast<int>(options_.telemetry_qos),
                                                     false,
                                                     {},
                                                     {}}),
                 std::chrono::steady_clock::now()});
  } else {
    ++counters_.telemetry_buffered;
  }
}

void EdgeAgent::PollInFlight() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    Status error;
    auto state = it->pending.Poll(&error);
    if (state == mqtt::Pending::State::kRunning && now - it->sent < kPublishTimeout) {
      ++it;
      continue;
    }
    if (state == mqtt::Pending::State::kDone) {
      outbox_->Acknowledged(it->id);
      ++counters_.telemetry_sent;
      if (it->historical) ++counters_.telemetry_historical;
    } else {
      spdlog::debug("der '{}': outbox record {} not acknowledged: {}", options_.der_id, it->id,
                    state == mqtt::Pending::State::kFailed ? error.message() : "timed out");
      outbox_->Failed(it->id);
    }
    it = in_flight_.erase(it);
  }
  Status s = outbox_->Commit();
  if (!s.ok()) spdlog::error("der '{}': {}", options_.der_id, s.message());
}

void EdgeAgent::PumpOutbox(int64_t now_ms) {
  (void)now_ms;
  PollInFlight();
  if (!session_.online()) {
    // The connection is gone: nothing in flight will be answered.
    if (!in_flight_.empty() || outbox_->in_flight() > 0) {
      in_flight_.clear();
      outbox_->ConnectionLost();
    }
    return;
  }
  if (in_flight_.size() >= kOutboxWindow) return;
  auto next = outbox_->TakeNext(kOutboxWindow - in_flight_.size());
  if (!next.ok()) {
    spdlog::error("der '{}': {}", options_.der_id, next.status().message());
    return;
  }
  for (const OutboxRecord& r : *next) {
    derms::v1::Telemetry t;
    if (!t.ParseFromString(r.payload)) {
      // Cannot happen unless the file was damaged: nothing to send, so it goes.
      spdlog::error("der '{}': outbox record {} (seq {}) is not a telemetry message; removed",
                    options_.der_id, r.id, r.seq);
      outbox_->Acknowledged(r.id);
      continue;
    }
    bool was_live = !t.is_historical();
    t.set_is_historical(true);
    // Historical telemetry goes at QoS 1 whatever the live QoS: it was kept to arrive.
    in_flight_.push_back(
        InFlight{r.id, true,
                 client_->StartPublish(mqtt::Message{topics::DerTelemetry(options_.der_id),
                                                     was_live ? codec::ToBinary(t) : r.payload,
                                                     1,
                                                     false,
                                                     {},
                                                     {}}),
                 std::chrono::steady_clock::now()});
  }
}

void EdgeAgent::Shutdown(int64_t now_ms) {
  if (session_.online()) {
    Status ignored =
        client_->PublishAndWait(mqtt::Message{topics::DerStatus(options_.der_id),
                                              codec::ToBinary(StatusMessage(false, now_ms)),
                                              1,
                                              true,
                                              {},
                                              {}},
                                std::chrono::milliseconds(2000));
    (void)ignored;  // shutting down either way; the will covers a failed publish
  }
  // The status went after them: what the broker acknowledged leaves the
  // outbox; the rest waits for the next run.
  if (outbox_) PollInFlight();
  client_->Disconnect();
}

}  // namespace derms::edge
