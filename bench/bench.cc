// derms-bench: the measuring half of ./bench/run.sh. Each subcommand does one
// side of one comparison and prints one JSON line; run.sh pairs them with
// their baselines in the same run and turns them into ratios.
//
//   loadgen      publishes M telemetry messages from N DERs as fast as the broker takes them
//   count        the ingest floor: a bare subscriber that only counts
//   ingest       the aggregator, in-process: decoded, validated, registry, committed to SQLite
//   rt-floor     N plain publish -> reply round trips through the broker, no logic
//   rt-dispatch  grid status -> aggregator -> N controls -> N edge agents -> N responses
//   minimal-edge the footprint floor: a bare client publishing one telemetry message a second

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cloud_aggregator/service/aggregator.h"
#include "common/blocking_queue.h"
#include "common/codec.h"
#include "common/mqtt_client.h"
#include "common/signals.h"
#include "common/topics.h"
#include "edge_agent/agent/edge_agent.h"
#include "edge_agent/agent/runner.h"
#include "edge_agent/devices/simulated.h"

namespace {

using derms::Status;
using Clock = std::chrono::steady_clock;
namespace mqtt = derms::mqtt;
namespace topics = derms::topics;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

[[noreturn]] void Die(const std::string& what) {
  fmt::print(stderr, "derms-bench: {}\n", what);
  std::exit(1);
}

std::unique_ptr<mqtt::Client> Connect(const std::string& broker, const std::string& id) {
  auto c = mqtt::Client::Create(broker, id);
  if (!c.ok()) Die(c.status().ToString());
  return std::move(c).value();
}

void MustConnect(mqtt::Client& c) {
  Status s = c.Connect(mqtt::ConnectOptions{}, std::chrono::seconds(30));
  if (!s.ok()) Die(s.ToString());
}

// Waits until `done`, polling every millisecond; false after `timeout_s`.
bool WaitUntil(const std::function<bool()>& done, double timeout_s) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timeout_s));
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void Ready() {
  fmt::print("READY\n");
  std::fflush(stdout);
}

void Result(const std::string& name, uint64_t count, double seconds, const std::string& extra = "") {
  fmt::print("{{\"name\": \"{}\", \"messages\": {}, \"seconds\": {:.6f}, \"rate\": {:.1f}{}}}\n",
             name, count, seconds, seconds > 0 ? count / seconds : 0.0, extra);
  std::fflush(stdout);
}

int LoadGen(const std::string& broker, int ders, uint64_t messages, int qos) {
  // Payloads are built before the clock starts: we measure the broker and
  // the consumers, not the generator's encoding.
  std::vector<std::string> topic(ders);
  for (int d = 0; d < ders; ++d) topic[d] = topics::DerTelemetry(fmt::format("bat-{:05d}", d));
  std::vector<std::string> payload(messages);
  int64_t now = derms::WallNowMs();
  for (uint64_t i = 0; i < messages; ++i) {
    derms::v1::Telemetry t;
    int d = static_cast<int>(i % ders);
    t.set_der_id(fmt::format("bat-{:05d}", d));
    t.set_seq(i / ders + 1);
    t.set_timestamp_ms(now + static_cast<int64_t>(i / ders) * 1000);
    t.set_active_power_kw(3.5 + d % 7);
    t.set_reactive_power_kvar(0.2);
    t.set_soc_pct(40 + d % 50);
    t.set_voltage_v(240.1);
    t.set_frequency_hz(60.01);
    t.set_run_time_s(1000 + i);
    t.set_available_discharge_kw(10);
    t.set_available_charge_kw(10);
    payload[i] = t.SerializeAsString();
  }
  auto client = Connect(broker, fmt::format("bench-loadgen-{}", ::getpid()));
  MustConnect(*client);
  // Paho numbers outstanding QoS 1 messages with 16 bits: keep a window well
  // inside that and let the broker's acknowledgements pace us.
  constexpr size_t kWindow = 20000;
  std::deque<mqtt::Pending> in_flight;
  auto start = Clock::now();
  for (uint64_t i = 0; i < messages; ++i) {
    if (in_flight.size() >= kWindow) {
      Status s = in_flight.front().Wait(std::chrono::seconds(60));
      if (!s.ok()) Die(s.ToString());
      in_flight.pop_front();
    }
    in_flight.push_back(
        client->StartPublish(mqtt::Message{topic[i % ders], payload[i], qos, false, {}, {}}));
  }
  // The last acknowledgement means every earlier one is in (QoS 1 is in order).
  Status s = client->PublishAndWait(mqtt::Message{topics::Filter("bench/done"), "", 1, false, {}, {}},
                                    std::chrono::seconds(600));
  if (!s.ok()) Die(s.ToString());
  Result("loadgen", messages, Seconds(Clock::now() - start));
  client->Disconnect();
  return 0;
}

int Count(const std::string& broker, uint64_t messages, double timeout_s) {
  std::atomic<uint64_t> seen{0};
  std::atomic<int64_t> first_ns{0}, last_ns{0};
  auto client = Connect(broker, fmt::format("bench-count-{}", ::getpid()));
  client->SetMessageHandler([&](mqtt::Message) {
    int64_t now = Clock::now().time_since_epoch().count();
    if (seen.fetch_add(1) == 0) first_ns = now;
    last_ns = now;
  });
  MustConnect(*client);
  Status s = client->Subscribe({topics::AllDers("telemetry")}, 1, std::chrono::seconds(10));
  if (!s.ok()) Die(s.ToString());
  Ready();
  bool done = WaitUntil([&] { return seen >= messages; }, timeout_s);
  double secs = (last_ns - first_ns) / 1e9;
  client->ClearHandlers();
  Result("bare_subscriber", seen, secs, done ? "" : ", \"timeout\": true");
  return done ? 0 : 1;
}

int Ingest(const std::string& broker, uint64_t messages, const std::string& db, double timeout_s) {
  std::error_code ec;
  std::filesystem::remove(db, ec);
  derms::aggregator::AggregatorOptions o;
  o.broker_uri = broker;
  o.db_path = db;
  o.client_id = fmt::format("bench-aggregator-{}", ::getpid());
  o.session_expiry_s = 0;
  auto created = derms::aggregator::Aggregator::Create(o, derms::Clock());
  if (!created.ok()) Die(created.status().ToString());
  auto& agg = *created;
  std::atomic<bool> stop{false};
  std::thread runner([&] { agg->Run(stop); });
  if (!WaitUntil([&] { return agg->stats().ready; }, 30)) Die("aggregator did not get ready");
  Ready();
  if (!WaitUntil([&] { return agg->stats().accepted + agg->stats().rejected > 0; }, timeout_s)) {
    Die("no message arrived");
  }
  auto start = Clock::now();
  bool done = WaitUntil([&] { return agg->stats().stored >= messages; }, timeout_s);
  double secs = Seconds(Clock::now() - start);
  auto st = agg->stats();
  stop = true;
  runner.join();
  Result("aggregator", st.stored, secs,
         fmt::format(", \"rejected\": {}{}", st.rejected, done ? "" : ", \"timeout\": true"));
  return done ? 0 : 1;
}

// N responders each answer their own request topic; the driver times N
// requests out and N replies back.
int RoundTripFloor(const std::string& broker, int n, double timeout_s) {
  // Replies go out from a thread of our own, as the edge agents' do: a
  // publish from inside Paho's callback thread is serialised behind it.
  derms::BlockingQueue<std::pair<mqtt::Client*, mqtt::Message>> to_reply;
  std::vector<std::unique_ptr<mqtt::Client>> responders;
  for (int i = 0; i < n; ++i) {
    auto c = Connect(broker, fmt::format("bench-resp-{}-{}", ::getpid(), i));
    mqtt::Client* raw = c.get();
    std::string reply = topics::Filter(fmt::format("bench/reply/{}", i));
    c->SetMessageHandler([raw, reply, &to_reply](mqtt::Message m) {
      to_reply.Push({raw, mqtt::Message{reply, std::move(m.payload), 1, false, {}, {}}});
    });
    responders.push_back(std::move(c));
  }
  std::thread replier([&] {
    std::vector<std::pair<mqtt::Client*, mqtt::Message>> batch;
    while (!to_reply.closed()) {
      batch.clear();
      to_reply.WaitAndDrainTo(&batch, 1000, std::chrono::milliseconds(50));
      for (auto& [client, m] : batch) {
        Status s = client->Publish(m);
        (void)s;
      }
    }
  });
  std::vector<mqtt::Pending> pending;
  for (auto& c : responders) pending.push_back(c->StartConnect(mqtt::ConnectOptions{}));
  for (auto& p : pending) {
    Status s = p.Wait(std::chrono::seconds(60));
    if (!s.ok()) Die(s.ToString());
  }
  pending.clear();
  for (int i = 0; i < n; ++i) {
    pending.push_back(
        responders[i]->StartSubscribe({topics::Filter(fmt::format("bench/request/{}", i))}, 1));
  }
  for (auto& p : pending) {
    Status s = p.Wait(std::chrono::seconds(60));
    if (!s.ok()) Die(s.ToString());
  }
  std::atomic<int> replies{0};
  auto driver = Connect(broker, fmt::format("bench-driver-{}", ::getpid()));
  driver->SetMessageHandler([&](mqtt::Message) { ++replies; });
  MustConnect(*driver);
  Status s = driver->Subscribe({topics::Filter("bench/reply/+")}, 1, std::chrono::seconds(10));
  if (!s.ok()) Die(s.ToString());
  derms::v1::Control c;  // a control-sized payload
  c.set_command_id("r1-sub-1-bat-0001");
  c.set_issued_at_ms(derms::WallNowMs());
  c.add_intervals()->set_target_kw(5);
  std::string payload = c.SerializeAsString();
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    s = driver->Publish(
        mqtt::Message{topics::Filter(fmt::format("bench/request/{}", i)), payload, 1, false, {}, {}});
    if (!s.ok()) Die(s.ToString());
  }
  bool done = WaitUntil([&] { return replies >= n; }, timeout_s);
  double secs = Seconds(Clock::now() - start);
  driver->ClearHandlers();
  for (auto& r : responders) r->ClearHandlers();
  to_reply.Close();
  replier.join();
  Result("rt_floor", replies, secs, done ? "" : ", \"timeout\": true");
  return done ? 0 : 1;
}

int RoundTripDispatch(const std::string& broker, int n, const std::string& dir, double timeout_s) {
  spdlog::set_level(spdlog::level::warn);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  derms::aggregator::AggregatorOptions o;
  o.broker_uri = broker;
  o.db_path = dir + "/derms.db";
  o.client_id = fmt::format("bench-aggregator-{}", ::getpid());
  o.session_expiry_s = 0;
  auto created = derms::aggregator::Aggregator::Create(o, derms::Clock());
  if (!created.ok()) Die(created.status().ToString());
  auto& agg = *created;
  std::atomic<bool> stop_agg{false};
  std::thread agg_thread([&] { agg->Run(stop_agg); });
  if (!WaitUntil([&] { return agg->stats().ready; }, 30)) Die("aggregator did not get ready");

  const std::string substation = fmt::format("bench-sub-{}", ::getpid());
  // Let retained messages already on the broker settle first.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const uint64_t stored_before = agg->stats().stored;
  std::vector<std::unique_ptr<derms::edge::EdgeAgent>> agents;
  for (int i = 0; i < n; ++i) {
    derms::edge::AgentOptions a;
    a.broker_uri = broker;
    // Ids of their own: the broker still holds earlier runs' retained births.
    a.der_id = fmt::format("bench-{}-{:05d}", ::getpid(), i);
    a.substation_id = substation;
    a.nameplate = {derms::v1::BATTERY, 10, 10, 1000, 37.7, -122.4};
    a.telemetry_interval_s = 3600;  // one sample at start: quiet during the measurement
    a.state_dir = dir + "/state";
    a.reconnect_min_ms = 200;
    auto device = derms::edge::MakeSimulatedDevice(a.nameplate, i, derms::WallNowMs());
    auto agent = derms::edge::EdgeAgent::Create(a, std::move(device));
    if (!agent.ok()) Die(agent.status().ToString());
    agents.push_back(std::move(agent).value());
  }
  std::atomic<bool> stop_agents{false};
  std::thread agents_thread([&] {
    derms::edge::RunnerOptions r;
    r.tick = std::chrono::milliseconds(5);
    derms::edge::RunAgents(agents, derms::Clock(), stop_agents, r);
  });
  // Every DER born, online and heard from, so the aggregator counts it as
  // active: three new records each (birth, status change, telemetry).
  if (!WaitUntil([&] { return agg->stats().stored >= stored_before + 3u * n; }, 300)) {
    Die(fmt::format("only {} of {} DERs came up", agg->stats().ders_online, n));
  }
  std::atomic<int> answered{0};
  auto observer = Connect(broker, fmt::format("bench-observer-{}", ::getpid()));
  observer->SetMessageHandler([&](mqtt::Message m) {
    derms::v1::ControlResponse r;
    if (derms::codec::ParseBinary(m.payload, "response", &r).ok() &&
        (r.status() == derms::v1::APPLIED || r.status() == derms::v1::CLAMPED)) {
      ++answered;
    }
  });
  MustConnect(*observer);
  Status s = observer->Subscribe({topics::AllDers("response")}, 1, std::chrono::seconds(10));
  if (!s.ok()) Die(s.ToString());
  derms::v1::GridStatus g;
  g.set_substation_id(substation);
  g.set_timestamp_ms(derms::WallNowMs());
  g.set_load_kw(1000.0 + 5.0 * n);  // every battery is asked for 5 kW
  g.set_supply_kw(1000.0);
  g.set_frequency_hz(60);
  g.set_voltage_pu(1);
  auto start = Clock::now();
  s = observer->Publish(
      mqtt::Message{topics::GridStatus(substation), derms::codec::ToBinary(g), 1, false, {}, {}});
  if (!s.ok()) Die(s.ToString());
  bool done = WaitUntil([&] { return answered >= n; }, timeout_s);
  double secs = Seconds(Clock::now() - start);
  observer->ClearHandlers();
  stop_agents = true;
  agents_thread.join();
  // Leave the broker as we found it: no retained births or statuses of ours.
  for (const auto& a : agents) {
    for (const auto& t : {topics::DerBirth(a->der_id()), topics::DerStatus(a->der_id())}) {
      (void)observer->Publish(mqtt::Message{t, "", 1, true, {}, {}});
    }
  }
  (void)observer->PublishAndWait(mqtt::Message{topics::Filter("bench/done"), "", 1, false, {}, {}},
                                 std::chrono::seconds(60));
  stop_agg = true;
  agg_thread.join();
  Result("rt_dispatch", answered, secs, done ? "" : ", \"timeout\": true");
  return done ? 0 : 1;
}

int MinimalEdge(const std::string& broker, double duration_s) {
  auto client = Connect(broker, fmt::format("bench-minimal-{}", ::getpid()));
  MustConnect(*client);
  derms::v1::Telemetry t;
  t.set_der_id("bench-minimal");
  auto start = Clock::now();
  for (uint64_t seq = 1; Seconds(Clock::now() - start) < duration_s; ++seq) {
    t.set_seq(seq);
    t.set_timestamp_ms(derms::WallNowMs());
    Status s = client->Publish(
        mqtt::Message{topics::DerTelemetry("bench-minimal"), t.SerializeAsString(), 1, false, {}, {}});
    (void)s;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  client->Disconnect();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"derms-bench: one side of one benchmark; see bench/run.sh"};
  app.require_subcommand(1);
  std::string broker = "tcp://127.0.0.1:1883";
  int ders = 1000;
  uint64_t messages = 100000;
  int qos = 1;
  double timeout_s = 300;
  std::string db = "./var/bench/ingest.db";
  std::string dir = "./var/bench/rt";
  double duration_s = 30;
  app.add_option("--broker", broker, "MQTT broker URI");
  app.add_option("--timeout-s", timeout_s, "give up after this long");
  auto* loadgen = app.add_subcommand("loadgen", "publish telemetry as fast as the broker takes it");
  loadgen->add_option("--ders", ders, "distinct DERs")->check(CLI::Range(1, 100000));
  loadgen->add_option("--messages", messages, "messages to publish");
  loadgen->add_option("--qos", qos, "0 or 1")->check(CLI::Range(0, 1));
  auto* count = app.add_subcommand("count", "bare subscriber: count telemetry");
  count->add_option("--messages", messages, "messages to wait for");
  auto* ingest = app.add_subcommand("ingest", "the aggregator, in-process, until all is committed");
  ingest->add_option("--messages", messages, "messages to wait for");
  ingest->add_option("--db", db, "database file (replaced)");
  auto* rt_floor = app.add_subcommand("rt-floor", "N publish -> reply round trips, no logic");
  rt_floor->add_option("--ders", ders, "round trips")->check(CLI::Range(1, 100000));
  auto* rt_dispatch = app.add_subcommand("rt-dispatch", "grid status -> N control responses");
  rt_dispatch->add_option("--ders", ders, "edge agents")->check(CLI::Range(1, 100000));
  rt_dispatch->add_option("--dir", dir, "working directory (replaced)");
  auto* minimal = app.add_subcommand("minimal-edge", "bare client, one telemetry message a second");
  minimal->add_option("--duration-s", duration_s, "how long to run");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  if (*loadgen) return LoadGen(broker, ders, messages, qos);
  if (*count) return Count(broker, messages, timeout_s);
  if (*ingest) return Ingest(broker, messages, db, timeout_s);
  if (*rt_floor) return RoundTripFloor(broker, ders, timeout_s);
  if (*rt_dispatch) return RoundTripDispatch(broker, ders, dir, timeout_s);
  return MinimalEdge(broker, duration_s);
}
