#include "cloud_aggregator/service/aggregator.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <thread>

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

bool IsTelemetryTopic(const std::string& topic) {
  static const std::string kSuffix = "/telemetry";
  return topic.size() > kSuffix.size() &&
         topic.compare(topic.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

// Opens the telemetry journal beside the database and stores what an
// earlier run left in it (acknowledged to the broker, never committed).
StatusOr<std::unique_ptr<storage::Journal>> OpenJournal(storage::Store* store, int64_t now_ms) {
  std::vector<storage::JournalEntry> replay;
  auto journal = storage::Journal::Open(store->path() + "-inbox", &replay);
  if (!journal.ok()) return journal.status();
  size_t stored = 0, refused = 0;
  for (auto& e : replay) {
    auto parsed = topics::Parse(e.topic);
    derms::v1::Telemetry t;
    Status s = parsed.ok() ? DecodeDevice(e.payload, "telemetry", parsed->id, &t) : parsed.status();
    if (s.ok()) s = registry::ValidateTelemetry(t, parsed->id, now_ms);
    if (!s.ok()) {
      ++refused;
      spdlog::warn("journal replay: {}", s.message());
      continue;
    }
    store->Add(storage::TelemetryRecord{std::move(t), e.received_ms});
    ++stored;
  }
  // Released once committed, never before: a failing store keeps the files
  // for the next start. REQUIRES: the journal outlives the store (Create).
  storage::Journal* opened = journal->get();
  store->AfterCommit([opened] { opened->ReleaseReplayed(); });
  if (!replay.empty()) {
    spdlog::info(
        "journal: {} telemetry message(s) from the last run handed to the store again ({} "
        "refused); already stored ones are kept once",
        stored, refused);
  }
  return journal;
}

}  // namespace

StatusOr<std::unique_ptr<Aggregator>> Aggregator::Create(const AggregatorOptions& options,
                                                         const Clock& clock) {
  Status valid = options.Validate();
  if (!valid.ok()) return valid;
  // Declared before the store: the store runs the journal's release when it
  // closes, should Create fail below.
  std::unique_ptr<storage::Journal> journal;
  storage::StoreOptions store_options;
  store_options.path = options.db_path;
  auto store = storage::Store::Open(store_options);
  if (!store.ok()) return store.status();
  if (options.journal) {
    auto opened = OpenJournal(store->get(), clock.NowMs());
    if (!opened.ok()) return opened.status();
    journal = std::move(opened).value();
  }

  auto tree = vder::VderTree::Build(options.vders.vders);
  if (!tree.ok()) return tree.status();
  auto client = mqtt::Client::Create(options.broker_uri, options.client_id);
  if (!client.ok()) return client.status();
  auto aggregator = std::unique_ptr<Aggregator>(
      new Aggregator(options, clock, std::move(store).value(), std::move(client).value(),
                     std::move(tree).value()));
  // The jobs read the aggregator's own copy of the clock: `clock` may be a
  // temporary of the caller's.
  const Aggregator* self = aggregator.get();
  auto history = storage::HistoryJobs::Start(aggregator->store_.get(), options.history,
                                             [self] { return self->clock_.NowMs(); });
  if (!history.ok()) return history.status();
  aggregator->history_ = std::move(history).value();
  mqtt::Client* mqtt_client = aggregator->client_.get();
  aggregator->maintenance_ = std::make_unique<Maintenance>(
      options, aggregator->store_.get(), [self] { return self->clock_.NowMs(); },
      [mqtt_client](const std::string& topic, const std::string& payload) {
        Status s = mqtt_client->Publish(mqtt::Message{topic, payload, 1, false, {}, {}});
        if (!s.ok()) spdlog::warn("{} not published: {}", topic, s.message());
      });
  aggregator->journal_ = std::move(journal);
  return aggregator;
}

Aggregator::Aggregator(const AggregatorOptions& options, const Clock& clock,
                       std::unique_ptr<storage::Store> store, std::unique_ptr<mqtt::Client> client,
                       vder::VderTree tree)
    : options_(options),
      clock_(clock),
      store_(std::move(store)),
      client_(std::move(client)),
      session_(
          client_.get(),
          mqtt::SessionOptions{{topics::AllDers("birth"), topics::AllDers("status"),
                                topics::AllDers("telemetry"), topics::AllDers("response"),
                                topics::Filter("grid/+/status"), topics::Filter("vder/+/dispatch"),
                                topics::Filter("forecast/+/+"), topics::ScheduleRequest()},
                               500,
                               30000,
                               1}),
      inbound_(static_cast<size_t>(options.inbound_queue)),
      started_ms_(clock.NowMs()),
      registry_(registry::RegistryOptions{options.offline_after_intervals, 300, 30000}),
      fleet_(std::make_unique<vder::VderFleet>(std::move(tree))),
      costs_(options.vders.costs),
      last_run_id_(store_->last_run_id()) {
  vders_ = static_cast<uint32_t>(fleet_->tree().size());
  LoadPrices(store_->TakeStoredForecasts());
  // Paho's thread only hands the message over; the queue bound pushes back on
  // the broker when the processing thread falls behind.
  client_->SetMessageHandler([this](mqtt::Message m) {
    uint64_t seq = 0;
    if (journal_ && IsTelemetryTopic(m.topic)) {
      seq = journal_->Append(m.topic, m.payload, clock_.NowMs());
    }
    inbound_.Push(Inbound{std::move(m), seq});
  });
}

Aggregator::~Aggregator() {
  // The handlers write into inbound_ and session_, which die before client_.
  // Closing first wakes a handler blocked on a full queue.
  inbound_.Close();
  client_->ClearHandlers();
  // Maintenance publishes through client_; the store's writer runs the
  // journal's release callbacks while closing: both go while what they
  // use is still there.
  maintenance_.reset();
  history_.reset();
  store_.reset();
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
  s.reloads = reloads_;
  s.reloads_rejected = reloads_rejected_;
  s.vder_conflicts = vder_conflicts_;
  s.vders = vders_;
  return s;
}

void Aggregator::Run(const std::atomic<bool>& stop, std::atomic<bool>* reload) {
  auto prepare = [this](mqtt::ConnectOptions* connect) {
    connect->username = options_.username;
    connect->password = options_.password;
    connect->clean_start = false;
    connect->session_expiry_s = static_cast<uint32_t>(options_.session_expiry_s);
    connect->will = mqtt::Message{
        topics::AggregatorStatus(), StatusJson(false, clock_.NowMs()), 1, true, {}, {}};
    return Status::Ok();
  };
  std::vector<Inbound> batch;
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
    // While the store fails and holds too much, the queue fills, Paho's
    // handler blocks and the broker's session holds the rest.
    if (store_->ShouldPause()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } else {
      inbound_.WaitAndDrainTo(&batch, kBurst, std::chrono::milliseconds(50));
    }
    int64_t now_ms = clock_.NowMs();
    for (const auto& in : batch) {
      Handle(in.message, now_ms);
      journal_handled_ = std::max(journal_handled_, in.journal_seq);
    }
    if (reload && reload->exchange(false)) Reload(clock_.NowMs());
    Periodic(clock_.NowMs());
  }
  // Whatever the broker already handed us is processed before we go.
  while (auto in = inbound_.PopFor(std::chrono::milliseconds(0))) {
    Handle(in->message, clock_.NowMs());
    journal_handled_ = std::max(journal_handled_, in->journal_seq);
  }
  ReleaseJournal();
  while (!runs_.empty()) FinishRun(runs_.begin()->first, "stopped", clock_.NowMs());
  if (session_.online()) {
    Status s = client_->PublishAndWait(
        mqtt::Message{
            topics::AggregatorStatus(), StatusJson(false, clock_.NowMs()), 1, true, {}, {}},
        std::chrono::milliseconds(2000));
    if (!s.ok()) spdlog::warn("offline status not published: {}", s.message());
  }
  client_->Disconnect();
  Status flushed = store_->Flush();
  if (!flushed.ok()) {
    spdlog::error("stopping with records not committed (retried while the store closes): {}",
                  flushed.message());
  }
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

void Aggregator::Reply(const std::string& response_topic, const std::string& correlation_data,
                       const std::string& payload) {
  if (response_topic.empty()) return;
  Status s =
      client_->Publish(mqtt::Message{response_topic, payload, 1, false, {}, correlation_data});
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
    case topics::Kind::kForecast:
      return HandlePriceForecast(id, parsed->key, m, now_ms);
    case topics::Kind::kScheduleRequest:
      return HandleScheduleRequest(m, now_ms);
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
  RefreshContribution(der);
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
  PlaceDer(*der);
  if (out.change == registry::Change::kOnline) NoteOnlineChange(*der, true, "birth", now_ms);
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
  if (out.change == registry::Change::kOnline) {
    NoteOnlineChange(*der, true, "telemetry", now_ms);
  } else if (!out.stale) {
    RefreshContribution(*der);
  }
  if (out.request_rebirth) {
    SendCommand(der_id, derms::v1::REBIRTH, "telemetry seen without a birth", now_ms);
  }
  ders_known_ = static_cast<uint32_t>(registry_.size());
}

void Aggregator::HandleResponse(const std::string& der_id, const mqtt::Message& m, int64_t now_ms) {
  derms::v1::ControlResponse r;
  Status s = DecodeDevice(m.payload, "response", der_id, &r);
  if (s.ok()) s = registry::ValidateResponse(r, der_id);
  if (!s.ok()) return Reject(s, m.topic);
  Accept();
  ++responses_;
  // The control a DER follows ends with it, or when another takes over.
  auto in_force = in_force_.find(der_id);
  if (in_force != in_force_.end() && in_force->second.command_id == r.command_id() &&
      r.status() != derms::v1::APPLIED && r.status() != derms::v1::CLAMPED &&
      r.status() != derms::v1::RECEIVED) {
    in_force_.erase(in_force);
  }
  if (schedule_commands_.count(r.command_id())) OnScheduleResponse(r, now_ms);
  auto sent = sent_.find(r.command_id());
  if (sent != sent_.end()) {
    const SentControl& c = sent->second;
    // An accepted control is what the DER follows now (if it is the latest
    // we sent it and no return-to-default went after it); a refused one
    // leaves it following whatever it followed before.
    auto latest = latest_sent_.find(der_id);
    bool latest_for_der = latest != latest_sent_.end() && latest->second == r.command_id();
    if (latest_for_der && (r.status() == derms::v1::APPLIED || r.status() == derms::v1::CLAMPED ||
                           r.status() == derms::v1::RECEIVED)) {
      in_force_[der_id] = InForce{r.command_id(), c.run_id,
                                  r.status() == derms::v1::CLAMPED ? r.applied_kw() : c.kw,
                                  c.ends_ms, r.status() == derms::v1::APPLIED};
    }
    auto run = runs_.find(c.run_id);
    if (run != runs_.end()) {
      run->second.run->OnResponse(c.member, r.command_id(), r.status(), r.applied_kw(), r.reason());
      if (!run->second.run->Waiting()) Advance(c.run_id, now_ms);
    }
  }
  store_->Add(storage::ResponseRecord{std::move(r), der_id, now_ms});
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
  CheckRunDeadlines(now_ms);
  auto wall = std::chrono::steady_clock::now();
  if (wall < next_periodic_) return;
  next_periodic_ = wall + std::chrono::milliseconds(200);
  ReleaseJournal();
  for (const auto& der_id : registry_.ExpireSilent(now_ms)) {
    NoteOnlineChange(*registry_.Find(der_id), false, "silence", now_ms);
  }
  // A sweep over every controlled DER: only now and then.
  if (wall >= next_sweep_) {
    next_sweep_ = wall + std::chrono::seconds(5);
    ForgetEndedControls(now_ms);
    if (membership_changed_) StoreMembership();
  }
  if (!session_.online()) return;
  PublishVderStatuses(false);
  if (wall >= next_status_) {
    PublishStatus(true, now_ms);
    next_status_ = wall + std::chrono::seconds(options_.status_interval_s);
  }
}

void Aggregator::ForgetEndedControls(int64_t now_ms) {
  // A minute past its end a control's late answers have had their chance.
  for (auto it = sent_.begin(); it != sent_.end();) {
    if (it->second.ends_ms + 60000 >= now_ms) {
      ++it;
      continue;
    }
    auto latest = latest_sent_.find(it->second.der_id);
    if (latest != latest_sent_.end() && latest->second == it->first) latest_sent_.erase(latest);
    it = sent_.erase(it);
  }
  for (auto it = in_force_.begin(); it != in_force_.end();) {
    it = it->second.ends_ms < now_ms ? in_force_.erase(it) : std::next(it);
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
  auto* h = st.mutable_history();
  const auto& stored = store_->counters();
  h->set_rows_stored(s.stored);
  h->set_rows_expired(stored.expired);
  h->set_storage_errors(stored.errors);
  storage::StoreHealth health = store_->health();
  h->set_storage_failing(health.failing);
  h->set_storage_last_error(health.last_error);
  h->set_storage_failing_since_ms(health.failing_since_ms);
  h->set_storage_retries(health.retries);
  h->set_storage_records_held(health.held);
  h->set_storage_records_accepted(health.accepted);
  h->set_storage_records_committed(health.committed);
  h->set_ingest_paused(store_->ShouldPause());
  if (history_) {
    const auto& jobs = history_->counters();
    h->set_rollup_watermark_ms(jobs.watermark_ms);
    h->set_buckets_written(jobs.buckets);
    h->set_late_buckets(jobs.late_buckets);
    h->set_chunks_sealed(jobs.chunks_sealed);
    h->set_last_pass_ms(jobs.last_pass_ms);
  }
  if (journal_) {
    h->set_journal_appended(journal_->appended());
    h->set_journal_write_errors(journal_->write_errors());
  }
  return codec::ToJson(st);
}

// ---- Virtual DERs ----

Aggregator::VderView& Aggregator::View(int v) {
  if (views_.size() < fleet_->tree().size()) views_.resize(fleet_->tree().size());
  return views_[v];
}

void Aggregator::PlaceDer(const registry::DerState& der) {
  membership_changed_ = true;
  size_t before = fleet_->tree().size();
  std::string conflict = fleet_->Place(der.birth);
  if (!conflict.empty()) {
    ++vder_conflicts_;
    rejection_log_.Warn("vder_conflict", conflict);
  }
  if (fleet_->tree().size() != before) {
    vders_ = static_cast<uint32_t>(fleet_->tree().size());
    spdlog::info(
        "virtual DER '{}' made for substation '{}' (no configured virtual DER claims "
        "its DERs)",
        fleet_->tree().definition(static_cast<int>(before)).id, der.birth.substation_id());
  }
  RefreshContribution(der);
}

void Aggregator::ReleaseJournal() {
  if (!journal_ || journal_handled_ <= journal_released_) return;
  journal_released_ = journal_handled_;
  storage::Journal* journal = journal_.get();
  uint64_t seq = journal_released_;
  // Runs on the writer thread once everything handled so far is committed.
  store_->AfterCommit([journal, seq] { journal->Release(seq); });
}

void Aggregator::StoreMembership() {
  membership_changed_ = false;
  const vder::VderTree& tree = fleet_->tree();
  storage::VderMembersRecord record;
  for (int v = 0; v < static_cast<int>(tree.size()); ++v) {
    std::set<std::string> ders;
    std::vector<int> todo{v};
    std::set<int> seen;
    while (!todo.empty()) {
      int u = todo.back();
      todo.pop_back();
      if (!seen.insert(u).second) continue;
      ders.insert(fleet_->direct_members(u).begin(), fleet_->direct_members(u).end());
      for (int c : tree.children(u)) todo.push_back(c);
    }
    record.members.emplace_back(tree.definition(v).id,
                                std::vector<std::string>(ders.begin(), ders.end()));
  }
  store_->Add(std::move(record));
}

void Aggregator::RefreshContribution(const registry::DerState& der) {
  if (!der.has_birth) return;
  vder::Contribution c;
  c.online = der.online;
  if (der.online && der.has_telemetry) {
    const auto& t = der.last;
    c.output_kw = t.active_power_kw();
    c.energy_available_kwh = dispatch::EnergyAvailableKwh(der.birth, t);
    // A faulted DER still produces what it produces, but offers nothing.
    if (!der.faulted()) {
      auto m =
          dispatch::DerMember(der.birth, t, static_cast<double>(options_.control_duration_s), 0.0);
      c.available_discharge_kw = std::max(0.0, m.max_kw - c.output_kw);
      c.available_charge_kw = std::max(0.0, c.output_kw - m.min_kw);
    }
  }
  fleet_->Update(der.der_id, c);
}

void Aggregator::PublishVderStatuses(bool force_all) {
  auto wall = std::chrono::steady_clock::now();
  const vder::VderTree& tree = fleet_->tree();
  int64_t now_ms = clock_.NowMs();
  for (size_t i = 0; i < tree.size(); ++i) {
    int v = static_cast<int>(i);
    VderView& view = View(v);
    const vder::Aggregate& a = fleet_->aggregate(v);
    const vder::Aggregate& p = view.published;
    bool stale = wall - view.published_at >= std::chrono::seconds(options_.vder_status_interval_s);
    bool moved =
        fleet_->version(v) != view.published_version &&
        (a.members_total != p.members_total || a.members_online != p.members_online ||
         std::abs(a.output_kw - p.output_kw) >= options_.vder_status_change_kw ||
         std::abs(a.available_discharge_kw - p.available_discharge_kw) >=
             options_.vder_status_change_kw ||
         std::abs(a.available_charge_kw - p.available_charge_kw) >= options_.vder_status_change_kw);
    bool may =
        wall - view.published_at >= std::chrono::milliseconds(options_.vder_status_min_interval_ms);
    if (!force_all && !stale && !((moved || view.changed) && may)) continue;
    const vder::VderDefinition& def = tree.definition(v);
    derms::v1::VirtualDerStatus& st = view.status;
    st.set_vder_id(def.id);
    st.set_name(def.name);
    st.set_path(tree.Path(v));
    st.set_policy(std::string(dispatch::PolicyName(def.policy)));
    st.clear_children();
    for (int c : tree.children(v)) st.add_children(tree.definition(c).id);
    st.set_dispatchable(def.dispatchable);
    st.set_grid_substation(def.grid_substation);
    st.set_members_total(a.members_total);
    st.set_members_online(a.members_online);
    st.set_members_direct(static_cast<uint32_t>(fleet_->direct_members(v).size()));
    st.set_output_kw(a.output_kw);
    st.set_available_discharge_kw(a.available_discharge_kw);
    st.set_available_charge_kw(a.available_charge_kw);
    st.set_energy_available_kwh(a.energy_available_kwh);
    st.set_timestamp_ms(now_ms);
    Publish(topics::VderStatus(def.id), codec::ToJson(st), true);
    view.published = a;
    view.published_version = fleet_->version(v);
    view.published_at = wall;
    view.changed = false;
  }
}

void Aggregator::Reload(int64_t now_ms) {
  if (options_.config_path.empty()) {
    spdlog::warn("reload asked for, but the aggregator was started without --config");
    return;
  }
  auto loaded = LoadReloadable(options_.config_path);
  if (!loaded.ok()) {
    ++reloads_rejected_;
    spdlog::error("configuration reload rejected, the running virtual DERs stay in force: {}",
                  loaded.status().message());
    return;
  }
  // Runs belong to the old tree: they end as they stand.
  while (!runs_.empty()) FinishRun(runs_.begin()->first, "reconfigured", now_ms);
  std::vector<std::string> old_ids;
  for (size_t v = 0; v < fleet_->tree().size(); ++v) {
    old_ids.push_back(fleet_->tree().definition(static_cast<int>(v)).id);
  }
  fleet_ = std::make_unique<vder::VderFleet>(std::move(loaded->tree));
  costs_ = loaded->config.costs;
  views_.clear();
  registry_.ForEach([this](const registry::DerState& der) {
    if (der.has_birth) PlaceDer(der);
  });
  // Virtual DERs that are gone lose their retained status.
  for (const auto& id : old_ids) {
    if (fleet_->tree().Find(id) < 0) Publish(topics::VderStatus(id), "", true);
  }
  vders_ = static_cast<uint32_t>(fleet_->tree().size());
  ++reloads_;
  spdlog::info("configuration reloaded: {} virtual DERs, {} DERs placed", fleet_->tree().size(),
               registry_.size());
  PublishVderStatuses(true);
}

}  // namespace derms::aggregator
