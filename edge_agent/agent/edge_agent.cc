#include "edge_agent/agent/edge_agent.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>

#include "common/codec.h"
#include "common/topics.h"

namespace derms::edge {
namespace {
// Responses are few; a long outage should not grow them without bound.
constexpr size_t kMaxBufferedResponses = 1000;
constexpr uint32_t kSessionExpiryS = 3600;
}  // namespace

StatusOr<std::unique_ptr<EdgeAgent>> EdgeAgent::Create(const AgentOptions& options,
                                                       std::unique_ptr<Device> device) {
  Status valid = options.Validate();
  if (!valid.ok()) return valid;
  if (!device) return Status::Error("invalid_value", "no device for der " + options.der_id);
  auto store = StateStore::Open(options.state_dir, options.der_id);
  if (!store.ok()) return store.status();
  auto client = mqtt::Client::Create(options.broker_uri, "edge-" + options.der_id);
  if (!client.ok()) return client.status();
  return std::unique_ptr<EdgeAgent>(
      new EdgeAgent(options, std::move(device), std::move(*store), std::move(client).value()));
}

EdgeAgent::EdgeAgent(const AgentOptions& options, std::unique_ptr<Device> device, StateStore store,
                     std::unique_ptr<mqtt::Client> client)
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
                               static_cast<uint32_t>(std::hash<std::string>{}(options.der_id))}) {
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
    GoOnline(now_ms);
  }
  HandleInbox(now_ms);
  Respond(Confirm(engine_.Advance(now_ms, device_->Range()), now_ms));
  device_->Step(now_ms, SetpointNow());
  // Sampling starts with the first session; from then on it never stops, and
  // what cannot be sent is buffered as historical.
  if (counters_.connects > 0 && now_ms >= next_telemetry_ms_) {
    SendTelemetry(now_ms);
    next_telemetry_ms_ = now_ms + options_.telemetry_interval_s * 1000;
  }
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
  client_->Disconnect();
}

}  // namespace derms::edge
