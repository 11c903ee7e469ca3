#include "cloud_aggregator/service/aggregator.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <thread>

#include "cloud_aggregator/registry/validation.h"
#include "common/codec.h"
#include "common/topics.h"

namespace derms::aggregator {
namespace {

// Most messages taken from the queue at once (one lock) before periodic
// work gets a look in.
constexpr size_t kBurst = 1000;
// Milliseconds between metrics snapshots for readers on other threads.
constexpr int64_t kSnapshotEveryMs = 20;

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
  size_t stored = 0, refused = 0, quarantined = 0;
  // Checked as on arrival, against the newest birth stored (the registry is
  // empty until the broker's retained births come).
  const auto births =
      replay.empty() ? std::map<std::string, derms::v1::DerBirth>{} : store->LoadBirths();
  for (auto& e : replay) {
    auto parsed = topics::Parse(e.topic);
    derms::v1::Telemetry t;
    Status s =
        parsed.ok() ? codec::ParseDevice(e.payload, "telemetry", parsed->id, &t) : parsed.status();
    if (s.ok()) s = registry::ValidateTelemetry(t, parsed->id, now_ms);
    if (!s.ok()) {
      ++refused;
      spdlog::warn("journal replay: {}", s.message());
      continue;
    }
    auto birth = births.find(parsed->id);
    s = birth == births.end()
            ? Status::Error("no_birth",
                            fmt::format("telemetry from der '{}': seq {} came before any birth of "
                                        "the DER",
                                        parsed->id, t.seq()))
            : registry::CheckTelemetryPlausible(t, birth->second, now_ms);
    if (!s.ok()) {
      ++quarantined;
      spdlog::warn("journal replay: {}", s.message());
      store->Add(storage::QuarantineRecord{std::move(t), s.code(), s.message(), e.received_ms});
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
        "refused, {} quarantined); already stored ones are kept once",
        stored, refused, quarantined);
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
  auto store = storage::Store::Open(options.storage.ToStoreOptions(options.db_path));
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
  auto aggregator = std::unique_ptr<Aggregator>(new Aggregator(
      options, clock, std::move(store).value(), std::move(journal), std::move(client).value()));
  Status wired = aggregator->Wire(std::move(tree).value());
  if (!wired.ok()) return wired;
  return aggregator;
}

Aggregator::Aggregator(const AggregatorOptions& options, const Clock& clock,
                       std::unique_ptr<storage::Store> store,
                       std::unique_ptr<storage::Journal> journal,
                       std::unique_ptr<mqtt::Client> client)
    : options_(options),
      time_(clock),
      started_ms_(clock.NowMs()),
      journal_(std::move(journal)),
      store_(std::move(store)),
      client_(std::move(client)),
      inbound_(static_cast<size_t>(options.inbound_queue)),
      intake_(metrics_),
      outbox_(*client_, intake_),
      sink_(*store_),
      executor_(std::make_unique<ThreadExecutor>()),
      scheduler_(executor_.get()),
      router_(intake_) {}

Status Aggregator::Wire(vder::VderTree tree) {
  RegisterStorageMetrics(metrics_, *store_, journal_.get());

  const ModulePorts ports{outbox_, sink_, time_, intake_, metrics_};
  controls_ = std::make_unique<ControlsModule>(ports);
  FleetOptions fleet_options = options_.fleet;
  fleet_options.headroom_s = options_.dispatch.control_duration_s;
  fleet_ = std::make_unique<FleetModule>(fleet_options, options_.vders, std::move(tree), ports,
                                         *controls_, store_->LoadBirths());
  dispatch_ = std::make_unique<DispatchModule>(options_.dispatch, ports, *fleet_, *fleet_,
                                               *controls_, controls_->ledger(), controls_->holds(),
                                               store_->last_run_id());
  storage::Store* store = store_.get();
  charging_ = std::make_unique<ChargingModule>(
      options_.schedule, ports, *fleet_, *controls_, controls_->ledger(), controls_->holds(),
      scheduler_, [store](const std::string& id) { return store->LoadScheduleResult(id); },
      store_->TakeStoredForecasts());
  auto curtailment = CurtailmentModule::Create(options_.curtailment, ports, *fleet_, *controls_,
                                              controls_->holds());
  if (!curtailment.ok()) return curtailment.status();
  curtailment_ = std::move(curtailment).value();
  controls_->AddListener(charging_.get());
  controls_->AddListener(dispatch_.get());
  controls_->AddListener(curtailment_.get());
  auto history = HistoryModule::Create(options_.history, *store_, ports);
  if (!history.ok()) return history.status();
  history_ = std::move(history).value();
  status_ = std::make_unique<StatusModule>(options_.status_interval_s, started_ms_, ports);
  auto prometheus = PrometheusModule::Create(options_.prometheus, ports);
  if (!prometheus.ok()) return prometheus.status();
  prometheus_ = std::move(prometheus).value();

  modules_ = {controls_.get(), fleet_.get(),  dispatch_.get(),    charging_.get(),
              history_.get(),  status_.get(), curtailment_.get(), prometheus_.get()};
  for (Module* m : modules_) {
    for (auto& create_sql : m->Tables()) sink_.Add(storage::TableSchemaRecord{create_sql});
    Status s = router_.Add(m);
    if (!s.ok()) return s;
    m->AddJobs(scheduler_);
  }
  scheduler_.Every("journal.release", 200, [this](int64_t) { ReleaseJournal(); });
  // Readers see figures at most this old; taking a snapshot each loop would
  // cost more than the messages it counts when they come one by one.
  scheduler_.Every("metrics.snapshot", kSnapshotEveryMs,
                   [this](int64_t now_ms) { PublishSnapshot(now_ms); });

  session_ = std::make_unique<mqtt::Session>(
      client_.get(), mqtt::SessionOptions{router_.Filters(), 500, 30000, 1});
  // Paho's thread only hands the message over (journaled first); the queue
  // bound pushes back on the broker when the processing thread falls behind.
  client_->SetMessageHandler([this](mqtt::Message m) {
    uint64_t seq = 0;
    if (journal_ && IsTelemetryTopic(m.topic)) {
      seq = journal_->Append(m.topic, m.payload, time_.NowMs());
    }
    inbound_.Push(Received{std::move(m), seq});
  });
  PublishSnapshot(time_.NowMs());
  return Status::Ok();
}

Aggregator::~Aggregator() {
  // The handler writes into inbound_, which dies before client_. Closing
  // first wakes a handler blocked on a full queue.
  inbound_.Close();
  client_->ClearHandlers();
  // Background work (rollups, reports, backups) ends before the modules and
  // the store it uses; the store's writer runs the journal's release
  // callbacks while closing, so the journal goes after it.
  executor_.reset();
  history_.reset();
  store_.reset();
}

std::shared_ptr<const MetricsSnapshot> Aggregator::snapshot() const {
  std::lock_guard<std::mutex> lock(snapshot_mutex_);
  return snapshot_;
}

void Aggregator::PublishSnapshot(int64_t now_ms) {
  auto s = std::make_shared<const MetricsSnapshot>(metrics_.Snapshot(now_ms));
  std::lock_guard<std::mutex> lock(snapshot_mutex_);
  snapshot_ = std::move(s);
}

Stats Aggregator::stats() const {
  std::shared_ptr<const MetricsSnapshot> snap = snapshot();
  Stats s;
  s.ready = ready_;
  if (!snap) return s;
  auto u = [&snap](const char* name) { return static_cast<uint64_t>(snap->Value(name)); };
  s.accepted = u("messages_accepted");
  s.rejected = u("messages_rejected");
  s.stale_ignored = u("messages_stale");
  if (const auto* reasons = snap->Find("messages_rejected_by_reason")) {
    for (const auto& [reason, n] : reasons->by_label) {
      s.rejected_by_reason[reason] = static_cast<uint64_t>(n);
    }
  }
  s.ders_known = static_cast<uint32_t>(u("ders_known"));
  s.ders_online = static_cast<uint32_t>(u("ders_online"));
  s.dispatch_runs = u("dispatch_runs");
  s.controls_sent = u("controls_sent");
  s.responses = u("control_responses");
  s.stored = u("rows_stored");
  s.telemetry_stored = u("telemetry_stored");
  s.journaled = u("journal_appended");
  s.reloads = u("reloads");
  s.reloads_rejected = u("reloads_rejected");
  s.vder_conflicts = u("vder_conflicts");
  s.vders = static_cast<uint32_t>(u("vders"));
  return s;
}

void Aggregator::Handle(Received& in, int64_t now_ms) {
  mqtt::Message& m = in.message;
  Inbound message{std::move(m.topic),
                  std::move(m.payload),
                  ReplyTo{std::move(m.response_topic), std::move(m.correlation_data)},
                  {}};
  router_.Route(message, now_ms);
  journal_handled_ = std::max(journal_handled_, in.journal_seq);
}

void Aggregator::Run(const std::atomic<bool>& stop, std::atomic<bool>* reload) {
  auto prepare = [this](mqtt::ConnectOptions* connect) {
    connect->username = options_.username;
    connect->password = options_.password;
    connect->ca_file = options_.ca_file;
    connect->cert_file = options_.cert_file;
    connect->key_file = options_.key_file;
    connect->clean_start = false;
    connect->session_expiry_s = static_cast<uint32_t>(options_.session_expiry_s);
    connect->will = mqtt::Message{
        topics::AggregatorStatus(), status_->Render(false, time_.NowMs()), 1, true, {}, {}};
    return Status::Ok();
  };
  std::vector<Received> batch;
  batch.reserve(kBurst);
  while (!stop) {
    if (session_->Step(prepare) == mqtt::Session::Event::kOnline) {
      spdlog::info("connected to {} as '{}'", options_.broker_uri, options_.client_id);
      // Acknowledged before `ready`, so a late subscriber finds it retained.
      Status s = client_->PublishAndWait(
          mqtt::Message{
              topics::AggregatorStatus(), status_->Render(true, time_.NowMs()), 1, true, {}, {}},
          std::chrono::milliseconds(5000));
      if (!s.ok()) session_->MarkLost(s.message());
    }
    outbox_.set_online(session_->online());
    ready_ = session_->online();
    batch.clear();
    // While the store fails and holds too much, stop taking messages: the
    // queue fills, Paho's handler blocks and the broker's persistent session
    // holds the rest. Jobs go on, but publishes wait with Paho's thread
    // (known: leaving the broker instead would keep them going).
    if (store_->ShouldPause()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } else {
      inbound_.WaitAndDrainTo(&batch, kBurst, std::chrono::milliseconds(50));
    }
    int64_t now_ms = time_.NowMs();
    for (auto& in : batch) Handle(in, now_ms);
    if (reload && reload->exchange(false)) {
      if (options_.config_path.empty()) {
        spdlog::warn("reload asked for, but the aggregator was started without --config");
      } else {
        fleet_->Reload([this] { return LoadReloadable(options_.config_path); },
                       [this](int64_t at_ms) { dispatch_->FinishAll("reconfigured", at_ms); },
                       time_.NowMs());
      }
    }
    scheduler_.Tick(time_.MonotonicMs(), time_.NowMs());
  }
  // Whatever the broker already handed us is processed before we go.
  while (auto in = inbound_.PopFor(std::chrono::milliseconds(0))) Handle(*in, time_.NowMs());
  ReleaseJournal();
  for (Module* m : modules_) m->OnStop(time_.NowMs());
  if (session_->online()) {
    Status s = client_->PublishAndWait(
        mqtt::Message{
            topics::AggregatorStatus(), status_->Render(false, time_.NowMs()), 1, true, {}, {}},
        std::chrono::milliseconds(2000));
    if (!s.ok()) spdlog::warn("offline status not published: {}", s.message());
  }
  client_->Disconnect();
  Status flushed = store_->Flush();
  if (!flushed.ok()) {
    spdlog::error("stopping with records not committed (retried while the store closes): {}",
                  flushed.message());
  }
  PublishSnapshot(time_.NowMs());
}

void Aggregator::ReleaseJournal() {
  if (!journal_ || journal_handled_ <= journal_released_) return;
  journal_released_ = journal_handled_;
  storage::Journal* journal = journal_.get();
  uint64_t seq = journal_released_;
  // Runs on the writer thread once everything handled so far is committed.
  store_->AfterCommit([journal, seq] { journal->Release(seq); });
}

}  // namespace derms::aggregator
