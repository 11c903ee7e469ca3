// derms-bench: the measuring half of ./bench/run.sh. Each subcommand does one
// side of one comparison and prints one JSON line; run.sh pairs them with
// their baselines in the same run and turns them into ratios.
//
//   loadgen      publishes M telemetry messages from N DERs as fast as the broker takes them
//   count        the ingest floor: a bare subscriber that only counts
//   ingest       the aggregator, in-process: decoded, validated, registry, committed to SQLite
//   rt-floor     N plain publish -> reply round trips through the broker, no logic
//   rt-dispatch  grid status -> aggregator -> N controls -> N edge agents -> N responses
//   rt-responders, rt-agents  a share of those N clients, in a child process of each
//   minimal-edge the footprint floor: a bare client publishing one telemetry message a second
//   alloc        allocation down a nested virtual DER tree, beside one pass over the members
//   vder-memory  resident bytes per DER with the fleet loaded, beside its wire messages' bytes
//   schedule     the closed-form charging optimum for one device, beside GLPK's LP on the same
//   instance
//   store-insert, store-insert-under-query, history-size  the telemetry history (history_bench.h)

#include <fcntl.h>
#include <fmt/format.h>
#include <malloc.h>
#include <poll.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/history_bench.h"
#include "cloud_aggregator/dispatch/allocation.h"
#include "cloud_aggregator/dispatch/der_capability.h"
#include "cloud_aggregator/registry/der_registry.h"
#include "cloud_aggregator/registry/validation.h"
#include "cloud_aggregator/scheduling/charging_optimizer.h"
#include "cloud_aggregator/service/aggregator.h"
#include "cloud_aggregator/vder/vder_tree.h"
#include "cloud_aggregator/workflow/stages.h"
#include "cloud_aggregator/workflow/tree_allocation.h"
#include "common/blocking_queue.h"
#include "common/codec.h"
#include "common/mqtt/mqtt_client.h"
#include "common/signals.h"
#include "common/topics.h"
#include "edge_agent/agent/edge_agent.h"
#include "edge_agent/agent/runner.h"
#include "edge_agent/devices/simulated.h"

extern char** environ;

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

// --username and --password: a broker loading the DERMS plugin lets each
// client do only what its user may (the plugin benchmark's load generator
// logs in as its one DER, the counter as the aggregator).
std::string g_username;  // NOLINT: set once in main
std::string g_password;  // NOLINT

void MustConnect(mqtt::Client& c) {
  mqtt::ConnectOptions options;
  options.username = g_username;
  options.password = g_password;
  Status s = c.Connect(options, std::chrono::seconds(30));
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

void Result(const std::string& name, uint64_t count, double seconds,
            const std::string& extra = "") {
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
  // One sample a second per DER, the newest now: the aggregator checks each
  // against the clock and against its DER's birth (sent first, below).
  const int64_t rounds = static_cast<int64_t>(messages / ders) + 1;
  for (uint64_t i = 0; i < messages; ++i) {
    derms::v1::Telemetry t;
    int d = static_cast<int>(i % ders);
    t.set_der_id(fmt::format("bat-{:05d}", d));
    t.set_seq(i / ders + 1);
    t.set_timestamp_ms(now - (rounds - static_cast<int64_t>(i / ders)) * 1000);
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
  // Every DER is born before the clock starts (a consumer that counts only
  // telemetry ignores the births; the aggregator's ingest waits for them).
  for (int d = 0; d < ders; ++d) {
    derms::v1::DerBirth b;
    b.set_der_id(fmt::format("bat-{:05d}", d));
    b.set_bd_seq(1);
    b.set_der_type(derms::v1::BATTERY);
    b.set_max_discharge_kw(20);
    b.set_max_charge_kw(20);
    b.set_energy_capacity_kwh(80);
    b.set_substation_id("bench-sub");
    b.set_timestamp_ms(now);
    b.set_telemetry_interval_s(1);
    Status s = client->PublishAndWait(mqtt::Message{topics::DerBirth(b.der_id()),
                                                    b.SerializeAsString(), 1, false, {}, {}},
                                      std::chrono::seconds(60));
    if (!s.ok()) Die(s.ToString());
  }
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
  // Logged in as a DER (the plugin benchmark), the marker is what a DER may
  // publish: its status.
  mqtt::Message done{topics::Filter("bench/done"), "", 1, false, {}, {}};
  if (!g_username.empty()) {
    derms::v1::DerStatus st;
    st.set_der_id(g_username);
    st.set_online(true);
    st.set_bd_seq(1);
    st.set_timestamp_ms(derms::WallNowMs());
    done = mqtt::Message{topics::DerStatus(g_username), st.SerializeAsString(), 1, false, {}, {}};
  }
  Status s = client->PublishAndWait(done, std::chrono::seconds(600));
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

int Ingest(const std::string& broker, uint64_t messages, const std::string& db,
           double timeout_s) {
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
  // The clock runs from the first telemetry message's arrival (journaled on
  // Paho's thread) to the commit of the last sample. The load generator's
  // births come first and are not timed; nor are they counted, as every
  // other store counter would count them (and history rows too).
  if (!WaitUntil([&] { return agg->stats().journaled > 0; }, timeout_s)) {
    Die("no telemetry arrived");
  }
  auto start = Clock::now();
  bool done = WaitUntil([&] { return agg->stats().telemetry_stored >= messages; }, timeout_s);
  double secs = Seconds(Clock::now() - start);
  auto st = agg->stats();
  stop = true;
  runner.join();
  Result("aggregator", st.telemetry_stored, secs,
         fmt::format(", \"rejected\": {}{}", st.rejected, done ? "" : ", \"timeout\": true"));
  return done ? 0 : 1;
}

// ---- Round trips: the clients under test spread over child processes ----
//
// Paho C serves every client of a process from one receive thread polling all
// of their sockets, behind process-wide locks: with 10,000 clients in one
// process that, not the broker nor the aggregator, is what a round trip would
// measure. So both sides of the comparison hold their N clients (edge agents,
// or plain responders) in the same number of child derms-bench processes, and
// the parent (the aggregator and the observer, or the driver) times only the
// round trip, once every child reports its clients connected and subscribed.

// Clients per child process unless --procs says otherwise.
constexpr int kClientsPerProcess = 1000;

int ProcessesFor(int clients, int procs) {
  if (procs > 0) return std::min(procs, clients);
  return (clients + kClientsPerProcess - 1) / kClientsPerProcess;
}

// A child derms-bench holding clients [first, first + count) of a round trip
// (subcommands rt-responders and rt-agents). It writes READY on its stdout
// once they are all connected and subscribed, and stops when its stdin
// reaches end of file: when we close it, or when we die.
struct Child {
  pid_t pid = -1;
  int stop_fd = -1;   // the write end of its stdin
  int ready_fd = -1;  // the read end of its stdout
};

// Starts this executable again with `args`. The child keeps our stderr and
// no other descriptor of ours, so none of our MQTT sockets stays open in it.
Child SpawnSelf(const std::vector<std::string>& args) {
  int stop[2], ready[2];
  if (::pipe2(stop, O_CLOEXEC) != 0 || ::pipe2(ready, O_CLOEXEC) != 0) {
    Die(fmt::format("pipe: {}", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stop[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, ready[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  std::vector<std::string> all = {"derms-bench"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  Child child;
  int rc = ::posix_spawn(&child.pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(stop[0]);
  ::close(ready[1]);
  if (rc != 0) Die(fmt::format("cannot start a child derms-bench: {}", std::strerror(rc)));
  child.stop_fd = stop[1];
  child.ready_fd = ready[0];
  return child;
}

// Blocks until `child` writes READY; dies if it exits first or is not ready
// within `timeout_s`.
void AwaitReady(const Child& child, double timeout_s) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timeout_s));
  std::string said;
  while (said.find("READY\n") == std::string::npos) {
    auto left_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left_ms <= 0) Die(fmt::format("child {} not ready after {} s", child.pid, timeout_s));
    pollfd p{child.ready_fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left_ms)) <= 0) continue;
    char buf[512];
    ssize_t got = ::read(child.ready_fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) Die(fmt::format("child {} exited before it was ready", child.pid));
    said.append(buf, static_cast<size_t>(got));
  }
}

// Starts `procs` children, each `subcommand` with `args` and its share of
// clients [0, n), one after another: each connects its share before the next
// starts, so the broker's listen backlog never sees all n connect at once.
std::vector<Child> StartChildren(const std::string& broker, const std::string& subcommand,
                                 const std::vector<std::string>& args, int n, int procs) {
  std::vector<Child> children;
  for (int p = 0; p < procs; ++p) {
    const int64_t first = int64_t{n} * p / procs, end = int64_t{n} * (p + 1) / procs;
    std::vector<std::string> a = {"--broker",
                                  broker,
                                  subcommand,
                                  "--first",
                                  std::to_string(first),
                                  "--count",
                                  std::to_string(end - first)};
    a.insert(a.end(), args.begin(), args.end());
    children.push_back(SpawnSelf(a));
    AwaitReady(children.back(), 300);
  }
  return children;
}

// Closes every child's stdin, so they all shut down at once, and waits for
// them. False, with the reason on stderr, unless each exited cleanly.
bool StopChildren(std::vector<Child>& children) {
  for (auto& c : children) ::close(c.stop_fd);
  bool clean = true;
  for (auto& c : children) {
    int status = 0;
    while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
    ::close(c.ready_fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fmt::print(stderr, "derms-bench: child {} ended with status {:#x}\n", c.pid, status);
      clean = false;
    }
  }
  children.clear();
  return clean;
}

// The child's side: READY on stdout, then blocks until the parent closes our
// stdin. Later output on stdout goes to stderr: the parent no longer reads it.
void ReadyThenAwaitStop() {
  Ready();
  ::dup2(STDERR_FILENO, STDOUT_FILENO);
  char buf[64];
  for (;;) {
    ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
    if (got == 0 || (got < 0 && errno != EINTR)) return;
  }
}

// CPU seconds (user and system, all threads) process `pid` has used so far.
double CpuSeconds(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The fields after the command name (which may hold spaces) start at the
  // state, field 3; utime and stime are fields 14 and 15, in clock ticks.
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// CPU seconds used by this process and by `children` together so far.
std::pair<double, double> CpuNow(const std::vector<Child>& children) {
  double in_children = 0;
  for (const auto& c : children) in_children += CpuSeconds(c.pid);
  return {CpuSeconds(::getpid()), in_children};
}

// The JSON fields common to both round trips: the clients, how many processes
// held them, and the CPU seconds used between `before` and `after` here and
// in the children.
std::string RoundTripFields(int n, int procs, std::pair<double, double> before,
                            std::pair<double, double> after) {
  return fmt::format(
      ", \"ders\": {}, \"procs\": {}, \"cpu_bench_s\": {:.2f}, \"cpu_children_s\": {:.2f}", n,
      procs, after.first - before.first, after.second - before.second);
}

// One child of rt-floor: responders [first, first + count), each answering
// its own request topic with a reply of the same payload.
int RoundTripResponders(const std::string& broker, const std::string& tag, int first, int count) {
  // Replies go out from a thread of our own, as the edge agents' do: a
  // publish from inside Paho's callback thread is serialised behind it.
  derms::BlockingQueue<std::pair<mqtt::Client*, mqtt::Message>> to_reply;
  std::vector<std::unique_ptr<mqtt::Client>> responders;
  for (int i = first; i < first + count; ++i) {
    auto c = Connect(broker, fmt::format("bench-resp-{}-{}", tag, i));
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
  for (int i = 0; i < count; ++i) {
    pending.push_back(responders[i]->StartSubscribe(
        {topics::Filter(fmt::format("bench/request/{}", first + i))}, 1));
  }
  for (auto& p : pending) {
    Status s = p.Wait(std::chrono::seconds(60));
    if (!s.ok()) Die(s.ToString());
  }
  ReadyThenAwaitStop();
  for (auto& r : responders) r->ClearHandlers();
  to_reply.Close();
  replier.join();
  return 0;
}

// The floor: n plain publish -> reply round trips through the broker. The
// responders are in `procs` children; the driver here times n requests out
// and n replies back.
int RoundTripFloor(const std::string& broker, int n, int procs, double timeout_s) {
  procs = ProcessesFor(n, procs);
  auto children =
      StartChildren(broker, "rt-responders", {"--tag", std::to_string(::getpid())}, n, procs);
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
  auto cpu_before = CpuNow(children);
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    s = driver->Publish(mqtt::Message{
        topics::Filter(fmt::format("bench/request/{}", i)), payload, 1, false, {}, {}});
    if (!s.ok()) Die(s.ToString());
  }
  bool done = WaitUntil([&] { return replies >= n; }, timeout_s);
  double secs = Seconds(Clock::now() - start);
  auto cpu_after = CpuNow(children);
  driver->ClearHandlers();
  bool stopped = StopChildren(children);
  Result("rt_floor", replies, secs,
         RoundTripFields(n, procs, cpu_before, cpu_after) + (done ? "" : ", \"timeout\": true"));
  return done && stopped ? 0 : 1;
}

std::string AgentId(const std::string& prefix, int i) {
  return fmt::format("{}-{:05d}", prefix, i);
}

// One child of rt-dispatch: edge agents [first, first + count), batteries on
// `substation` ticked every 5 ms from one thread, as derms-fleet runs them.
int RoundTripAgents(const std::string& broker, const std::string& prefix,
                    const std::string& substation, const std::string& dir, int first, int count) {
  std::vector<std::unique_ptr<derms::edge::EdgeAgent>> agents;
  for (int i = first; i < first + count; ++i) {
    derms::edge::AgentOptions a;
    a.broker_uri = broker;
    a.der_id = AgentId(prefix, i);
    a.substation_id = substation;
    a.nameplate = {derms::v1::BATTERY, 10, 10, 1000, 37.7, -122.4};
    a.telemetry_interval_s = 3600;  // one sample at start: quiet during the measurement
    a.state_dir = dir + "/state";
    a.outbox = "memory";  // thousands of agents in one process: no SQLite file each
    a.reconnect_min_ms = 200;
    auto device = derms::edge::MakeSimulatedDevice(a.nameplate, i, derms::WallNowMs());
    auto agent = derms::edge::EdgeAgent::Create(a, std::move(device));
    if (!agent.ok()) Die(agent.status().ToString());
    agents.push_back(std::move(agent).value());
  }
  std::atomic<bool> stop{false};
  std::thread runner([&] {
    derms::edge::RunnerOptions r;
    r.tick = std::chrono::milliseconds(5);
    derms::edge::RunAgents(agents, derms::Clock(), stop, r);
  });
  // Online: connected, subscribed to its controls, its birth on the way.
  auto online = [&] {
    return std::all_of(agents.begin(), agents.end(),
                       [](const auto& a) { return a->counters().connects > 0; });
  };
  if (!WaitUntil(online, 300))
    Die(fmt::format("agents {}..{} not all online", first, first + count));
  ReadyThenAwaitStop();
  stop = true;
  runner.join();
  return 0;
}

// Grid status -> aggregator (here, in-process) -> n controls -> n edge agents
// (in `procs` children) -> n responses, timed from the grid status to the
// last response.
int RoundTripDispatch(const std::string& broker, int n, int procs, const std::string& dir,
                      double timeout_s) {
  procs = ProcessesFor(n, procs);
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
  // Ids of their own: the broker still holds earlier runs' retained births.
  const std::string prefix = fmt::format("bench-{}", ::getpid());
  // Let retained messages already on the broker settle first.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const uint64_t stored_before = agg->stats().stored;
  auto children =
      StartChildren(broker, "rt-agents",
                    {"--prefix", prefix, "--substation", substation, "--dir", dir}, n, procs);
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
  auto cpu_before = CpuNow(children);
  auto start = Clock::now();
  s = observer->Publish(
      mqtt::Message{topics::GridStatus(substation), derms::codec::ToBinary(g), 1, false, {}, {}});
  if (!s.ok()) Die(s.ToString());
  bool done = WaitUntil([&] { return answered >= n; }, timeout_s);
  double secs = Seconds(Clock::now() - start);
  auto cpu_after = CpuNow(children);
  observer->ClearHandlers();
  bool stopped = StopChildren(children);
  // Leave the broker as we found it: no retained births or statuses of ours.
  for (int i = 0; i < n; ++i) {
    const std::string id = AgentId(prefix, i);
    for (const auto& t : {topics::DerBirth(id), topics::DerStatus(id)}) {
      (void)observer->Publish(mqtt::Message{t, "", 1, true, {}, {}});
    }
  }
  (void)observer->PublishAndWait(mqtt::Message{topics::Filter("bench/done"), "", 1, false, {}, {}},
                                 std::chrono::seconds(60));
  stop_agg = true;
  agg_thread.join();
  Result("rt_dispatch", answered, secs,
         RoundTripFields(n, procs, cpu_before, cpu_after) + (done ? "" : ", \"timeout\": true"));
  return done && stopped ? 0 : 1;
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
    Status s = client->Publish(mqtt::Message{
        topics::DerTelemetry("bench-minimal"), t.SerializeAsString(), 1, false, {}, {}});
    (void)s;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  client->Disconnect();
  return 0;
}

// ---- Virtual DERs and dispatch, in-process: no broker ----

namespace v1 = derms::v1;
using derms::dispatch::Policy;

// Keeps `value` observable and tells the compiler memory may have changed, so
// a measured loop is neither dropped nor hoisted out of the repeats (Google
// Benchmark's DoNotOptimize).
template <typename T>
void KeepAlive(const T& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The synthetic fleet: one root over kSubstations substation virtual DERs,
// each over one leaf per DER type in kFleetTypes (1 + 10 + 40 virtual DERs).
// The leaves claim the DERs; every virtual DER uses one policy.
constexpr int kSubstations = 10;
constexpr v1::DerType kFleetTypes[] = {v1::BATTERY, v1::FLEXIBLE_LOAD, v1::PV, v1::EV_CHARGER};
constexpr char kFleetRoot[] = "fleet";
constexpr double kDurationS = 300;  // the aggregator's default control_duration_s

std::string SubstationId(int s) { return fmt::format("sub-{:02d}", s); }

derms::vder::VderTree FleetTree(Policy policy) {
  std::vector<derms::vder::VderDefinition> defs;
  derms::vder::VderDefinition root;
  root.id = kFleetRoot;
  root.policy = policy;
  for (int s = 0; s < kSubstations; ++s) {
    derms::vder::VderDefinition sub;
    sub.id = SubstationId(s);
    sub.policy = policy;
    sub.grid_substation = sub.id;
    for (v1::DerType type : kFleetTypes) {
      derms::vder::VderDefinition leaf;
      leaf.id = fmt::format("{}-{}", sub.id, v1::DerType_Name(type));
      leaf.policy = policy;
      leaf.members.substations = {sub.id};
      leaf.members.der_types = {type};
      sub.children.push_back(leaf.id);
      defs.push_back(std::move(leaf));
    }
    root.children.push_back(sub.id);
    defs.push_back(std::move(sub));
  }
  defs.push_back(std::move(root));
  auto tree = derms::vder::VderTree::Build(std::move(defs));
  if (!tree.ok()) Die(tree.status().ToString());
  return std::move(tree).value();
}

struct SyntheticDer {
  v1::DerBirth birth;
  v1::Telemetry telemetry;
  double cost = 0;  // merit order, per kWh of deviation
};

// DER `i` of the synthetic fleet, drawn from `rng` (seeded by the caller: the
// same fleet every run). 40 % batteries, 25 % flexible loads, 25 % PV, 10 %
// EV chargers, spread evenly over the substations, each with the birth and
// first telemetry an edge agent would send. Dies on a message the aggregator
// would reject.
SyntheticDer MakeDer(int i, std::mt19937_64& rng, int64_t now_ms) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  SyntheticDer d;
  v1::DerBirth& b = d.birth;
  v1::Telemetry& t = d.telemetry;
  const int sub = i % kSubstations;
  const double pick = u(rng);
  const v1::DerType type = pick < 0.40   ? v1::BATTERY
                           : pick < 0.65 ? v1::FLEXIBLE_LOAD
                           : pick < 0.90 ? v1::PV
                                         : v1::EV_CHARGER;
  b.set_der_id(fmt::format("der-{:06d}", i));
  b.set_bd_seq(1);
  b.set_der_type(type);
  b.set_substation_id(SubstationId(sub));
  b.set_feeder_id(fmt::format("{}-f{}", b.substation_id(), (i / kSubstations) % 8));
  b.set_provider_id(fmt::format("provider-{}", i % 5));
  b.set_latitude(37.0 + u(rng));
  b.set_longitude(-122.0 - u(rng));
  b.set_timestamp_ms(now_ms);
  b.set_telemetry_interval_s(60);
  t.set_der_id(b.der_id());
  t.set_seq(1);
  t.set_timestamp_ms(now_ms);
  t.set_reactive_power_kvar(0.1 * u(rng));
  t.set_voltage_v(236.0 + 8.0 * u(rng));
  t.set_frequency_hz(59.98 + 0.04 * u(rng));
  t.set_run_time_s(86400.0 * u(rng));
  double output_kw = 0;
  switch (type) {
    case v1::BATTERY: {  // both ways, limited by what it holds
      double kw = 5.0 + 5.0 * u(rng);
      b.set_max_discharge_kw(kw);
      b.set_max_charge_kw(kw);
      b.set_energy_capacity_kwh(kw * (1.0 + 2.0 * u(rng)));
      b.set_model("sim-battery 2.1");
      t.set_soc_pct(10.0 + 80.0 * u(rng));
      t.set_available_discharge_kw(kw);
      t.set_available_charge_kw(kw);
      output_kw = kw * 0.6 * (u(rng) - 0.5);
      d.cost = 0.10 + 0.10 * u(rng);
      break;
    }
    case v1::FLEXIBLE_LOAD: {  // consumes; can shed down to nothing or take more
      double kw = 2.0 + 6.0 * u(rng);
      b.set_max_charge_kw(kw);
      b.set_model("sim-load 1.4");
      t.set_available_charge_kw(kw);
      output_kw = -kw * (0.3 + 0.6 * u(rng));
      d.cost = 0.05 + 0.10 * u(rng);
      break;
    }
    case v1::PV: {  // can only curtail what the sun gives
      double kw = 3.0 + 7.0 * u(rng);
      b.set_max_discharge_kw(kw);
      b.set_model("sim-pv 3.0");
      output_kw = kw * (0.2 + 0.7 * u(rng));
      t.set_available_discharge_kw(output_kw);
      d.cost = 0.02 + 0.03 * u(rng);
      break;
    }
    default: {  // EV charger: one way, 70 % plugged in
      double kw = 7.0 + 4.0 * u(rng);
      b.set_max_charge_kw(kw);
      b.set_model("sim-evse 1.0");
      bool plugged = u(rng) < 0.7;
      t.set_available_charge_kw(plugged ? kw : 0.0);
      output_kw = plugged ? -kw * u(rng) : 0.0;
      d.cost = 0.15 + 0.15 * u(rng);
      break;
    }
  }
  t.set_active_power_kw(output_kw);
  t.set_baseline_kw(output_kw);
  Status s = derms::registry::ValidateBirth(b, b.der_id());
  if (s.ok()) s = derms::registry::ValidateTelemetry(t, t.der_id(), now_ms);
  if (!s.ok()) Die(s.ToString());
  return d;
}

// What the aggregator adds to the virtual DERs for this DER (as
// Aggregator::RefreshContribution does).
derms::vder::Contribution ContributionOf(const derms::registry::DerState& der) {
  derms::vder::Contribution c;
  c.online = der.online;
  if (der.online && der.has_telemetry) {
    c.output_kw = der.last.active_power_kw();
    c.energy_available_kwh = derms::dispatch::EnergyAvailableKwh(der.birth, der.last);
    if (!der.faulted()) {
      auto m = derms::dispatch::DerMember(der.birth, der.last, kDurationS, 0.0);
      c.available_discharge_kw = std::max(0.0, m.max_kw - c.output_kw);
      c.available_charge_kw = std::max(0.0, c.output_kw - m.min_kw);
    }
  }
  return c;
}

// Dies unless `a` keeps every member in its range and sums to `target_kw`.
void CheckAllocation(const derms::workflow::TreeAllocation& a,
                     const std::vector<derms::workflow::ActiveMember>& members, double target_kw) {
  const double tolerance = 1e-6 * std::max(1.0, std::abs(target_kw));
  double sum = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    const auto& m = members[i].member;
    if (a.target_kw[i] < m.min_kw - 1e-9 || a.target_kw[i] > m.max_kw + 1e-9) {
      Die(fmt::format("alloc: der '{}' given {} kW outside [{}, {}]", members[i].der_id,
                      a.target_kw[i], m.min_kw, m.max_kw));
    }
    sum += a.target_kw[i];
  }
  if (std::abs(sum - target_kw) > tolerance || std::abs(a.root.shortfall_kw) > tolerance) {
    Die(fmt::format("alloc: members sum to {} kW (shortfall {} kW), target {} kW", sum,
                    a.root.shortfall_kw, target_kw));
  }
}

// Times AllocateTree over the whole fleet for a feasible target (60 % of the
// way from the baseline to the most output), beside the floor: one pass over
// the same members summing their headroom. Medians of `repeats` runs, after
// one untimed warm-up.
int Alloc(int ders, Policy policy, int repeats) {
  derms::vder::VderFleet fleet(FleetTree(policy));
  std::mt19937_64 rng(42);
  const int64_t now_ms = derms::WallNowMs();
  std::vector<derms::workflow::ActiveMember> members;
  members.reserve(ders);
  for (int i = 0; i < ders; ++i) {
    SyntheticDer d = MakeDer(i, rng, now_ms);
    std::string conflict = fleet.Place(d.birth);
    int v = fleet.claimant(d.birth.der_id());
    if (!conflict.empty() || v < 0) {
      Die(fmt::format("der '{}' not placed: {}", d.birth.der_id(), conflict));
    }
    members.push_back({d.birth.der_id(), v, d.birth.der_type(),
                       derms::dispatch::DerMember(d.birth, d.telemetry, kDurationS, d.cost)});
  }
  // Ids are made in order, so the members are in der_id order, as the
  // aggregator's ActiveMembers sorts them.
  const derms::vder::VderTree& tree = fleet.tree();
  const int root = tree.Find(kFleetRoot);
  const auto capacity = derms::workflow::TotalCapacity(members);
  const double target_kw = capacity.baseline_kw + 0.6 * capacity.up_kw;
  std::vector<double> alloc_ms, floor_ms;
  for (int r = 0; r <= repeats; ++r) {
    auto t0 = Clock::now();
    double headroom_kw = 0;
    for (const auto& m : members) headroom_kw += m.member.max_kw - m.member.baseline_kw;
    KeepAlive(headroom_kw);
    auto t1 = Clock::now();
    auto a = derms::workflow::AllocateTree(tree, root, target_kw, members, kDurationS);
    auto t2 = Clock::now();
    CheckAllocation(a, members, target_kw);
    if (r == 0) continue;
    floor_ms.push_back(Millis(t1 - t0));
    alloc_ms.push_back(Millis(t2 - t1));
  }
  const double alloc = Median(alloc_ms), floor = Median(floor_ms);
  fmt::print(
      "{{\"name\": \"alloc\", \"policy\": \"{}\", \"ders\": {}, \"vders\": {}, \"repeats\": {}, "
      "\"target_kw\": {:.3f}, \"alloc_ms\": {:.4f}, \"alloc_min_ms\": {:.4f}, "
      "\"alloc_max_ms\": {:.4f}, \"floor_ms\": {:.4f}, \"floor_min_ms\": {:.4f}, "
      "\"floor_max_ms\": {:.4f}, \"ratio\": {:.2f}}}\n",
      derms::dispatch::PolicyName(policy), ders, tree.size(), repeats, target_kw, alloc,
      *std::min_element(alloc_ms.begin(), alloc_ms.end()),
      *std::max_element(alloc_ms.begin(), alloc_ms.end()), floor,
      *std::min_element(floor_ms.begin(), floor_ms.end()),
      *std::max_element(floor_ms.begin(), floor_ms.end()), alloc / floor);
  std::fflush(stdout);
  return 0;
}

// This process's resident set (VmRSS), bytes.
int64_t ResidentBytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  Die("no VmRSS in /proc/self/status");
}

// The aggregator's state for `ders` DERs (registry and virtual DER fleet,
// each DER born and heard from once, as HandleBirth and HandleTelemetry leave
// it): resident bytes per DER, beside the bytes of the DER's birth and
// telemetry on the wire. Run once per process, so the resident set is clean.
int VderMemory(int ders) {
  std::mt19937_64 rng(42);
  const int64_t now_ms = derms::WallNowMs();
  const int64_t rss_before = ResidentBytes();
  const size_t heap_before = mallinfo2().uordblks;
  derms::registry::DerRegistry registry;
  derms::vder::VderFleet fleet(FleetTree(Policy::kProRata));
  uint64_t wire_bytes = 0;
  for (int i = 0; i < ders; ++i) {
    SyntheticDer d = MakeDer(i, rng, now_ms);
    wire_bytes += d.birth.ByteSizeLong() + d.telemetry.ByteSizeLong();
    const std::string& id = d.birth.der_id();
    if (registry.OnBirth(d.birth, now_ms).stale) Die(fmt::format("birth of '{}' stale", id));
    const derms::registry::DerState* der = registry.Find(id);
    std::string conflict = fleet.Place(der->birth);
    if (!conflict.empty()) Die(conflict);
    fleet.Update(id, ContributionOf(*der));
    if (registry.OnTelemetry(d.telemetry, now_ms).stale) {
      Die(fmt::format("telemetry of '{}' stale", id));
    }
    fleet.Update(id, ContributionOf(*der));
  }
  const int64_t rss_after = ResidentBytes();
  const size_t heap_after = mallinfo2().uordblks;
  const auto& total = fleet.aggregate(fleet.tree().Find(kFleetRoot));
  if (registry.size() != static_cast<size_t>(ders) ||
      total.members_online != static_cast<uint32_t>(ders)) {
    Die(fmt::format("vder-memory: {} DERs known, {} online in the root, expected {}",
                    registry.size(), total.members_online, ders));
  }
  const double per_der = static_cast<double>(rss_after - rss_before) / ders;
  const double wire_per_der = static_cast<double>(wire_bytes) / ders;
  fmt::print(
      "{{\"name\": \"vder_memory\", \"ders\": {}, \"vders\": {}, \"rss_before_bytes\": {}, "
      "\"rss_after_bytes\": {}, \"bytes_per_der\": {:.1f}, \"heap_bytes_per_der\": {:.1f}, "
      "\"wire_bytes_per_der\": {:.1f}, \"ratio\": {:.2f}}}\n",
      ders, fleet.tree().size(), rss_before, rss_after, per_der,
      static_cast<double>(heap_after - heap_before) / ders, wire_per_der, per_der / wire_per_der);
  std::fflush(stdout);
  return 0;
}

// ---- The charging optimiser, in-process ----

// One device over `intervals` 5-minute prices (2,016: a week) from a seeded
// generator: a daily shape with noise, in cents per MWh, some of it
// negative. An EV on a 7.4 kW charger wanting 100 kWh stored at 90 %
// efficiency, free to charge any time in the window. Times OptimizeSingle
// and SolveSingleWithLp (GLPK's simplex) on the same instance, each the
// median of `repeats` calls after one untimed warm-up, and dies unless they
// cost the same to a relative 1e-9.
int Schedule(int intervals, int repeats) {
  namespace sched = derms::scheduling;
  constexpr int64_t kStartMs = 1'700'006'400'000;
  constexpr int64_t kStepS = 300;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<sched::PriceInterval> prices;
  for (int i = 0; i < intervals; ++i) {
    const double day = static_cast<double>(i * kStepS) / 86400.0;
    const double shape = 60 + 45 * std::sin(2 * M_PI * (day - 0.3));
    prices.push_back({kStartMs + i * kStepS * 1000, kStepS,
                      std::round((shape + 50 * (u(rng) - 0.45)) * 100.0) / 100.0});
  }
  sched::ChargeNeed need;
  need.max_charge_kw = 7.4;
  need.energy_kwh = 100;
  need.efficiency = 0.9;
  need.earliest_start_ms = kStartMs;
  need.ready_by_ms = kStartMs + static_cast<int64_t>(intervals) * kStepS * 1000;
  if (Status s = sched::ValidateNeed(need); !s.ok()) Die(s.ToString());

  std::vector<double> ours_ms, lp_ms;
  sched::ChargingSchedule ours;
  sched::ChargingSchedule lp;
  for (int r = 0; r <= repeats; ++r) {
    auto t0 = Clock::now();
    ours = sched::OptimizeSingle(need, prices);
    KeepAlive(ours.cost);
    auto t1 = Clock::now();
    auto solved = sched::SolveSingleWithLp(need, prices);
    auto t2 = Clock::now();
    if (!solved.ok()) Die(solved.status().ToString());
    lp = std::move(solved).value();
    if (r == 0) continue;
    ours_ms.push_back(Millis(t1 - t0));
    lp_ms.push_back(Millis(t2 - t1));
  }
  if (std::abs(ours.cost - lp.cost) > 1e-9 * std::max(std::abs(ours.cost), std::abs(lp.cost)) ||
      std::abs(ours.energy_kwh - lp.energy_kwh) > 1e-9 * need.energy_kwh) {
    Die(fmt::format(
        "schedule: closed form costs {:.17g} for {:.17g} kWh, the LP {:.17g} for {:.17g}",
        ours.cost, ours.energy_kwh, lp.cost, lp.energy_kwh));
  }
  size_t charged = 0;
  for (const auto& slot : ours.slots) charged += slot.power_kw > 0;
  const double ours_med = Median(ours_ms), lp_med = Median(lp_ms);
  fmt::print(
      "{{\"name\": \"schedule\", \"intervals\": {}, \"repeats\": {}, \"charged_slots\": {}, "
      "\"cost\": {:.12g}, \"lp_cost\": {:.12g}, \"immediate_cost\": {:.12g}, "
      "\"ours_ms\": {:.5f}, \"ours_min_ms\": {:.5f}, \"ours_max_ms\": {:.5f}, "
      "\"lp_ms\": {:.4f}, \"lp_min_ms\": {:.4f}, \"lp_max_ms\": {:.4f}, \"ratio\": {:.1f}}}\n",
      intervals, repeats, charged, ours.cost, lp.cost, ours.immediate_cost, ours_med,
      *std::min_element(ours_ms.begin(), ours_ms.end()),
      *std::max_element(ours_ms.begin(), ours_ms.end()), lp_med,
      *std::min_element(lp_ms.begin(), lp_ms.end()), *std::max_element(lp_ms.begin(), lp_ms.end()),
      lp_med / ours_med);
  std::fflush(stdout);
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
  app.add_option("--username", g_username, "MQTT user name (a broker with the DERMS plugin)");
  app.add_option("--password", g_password, "MQTT password");
  auto* loadgen = app.add_subcommand("loadgen", "publish telemetry as fast as the broker takes it");
  loadgen->add_option("--ders", ders, "distinct DERs")->check(CLI::Range(1, 100000));
  loadgen->add_option("--messages", messages, "messages to publish");
  loadgen->add_option("--qos", qos, "0 or 1")->check(CLI::Range(0, 1));
  auto* count = app.add_subcommand("count", "bare subscriber: count telemetry");
  count->add_option("--messages", messages, "messages to wait for");
  auto* ingest = app.add_subcommand("ingest", "the aggregator, in-process, until all is committed");
  ingest->add_option("--messages", messages, "messages to wait for");
  ingest->add_option("--db", db, "database file (replaced)");
  int procs = 0;
  const std::string procs_help =
      fmt::format("child processes holding the clients (0: one per {})", kClientsPerProcess);
  auto* rt_floor = app.add_subcommand("rt-floor", "N publish -> reply round trips, no logic");
  rt_floor->add_option("--ders", ders, "round trips")->check(CLI::Range(1, 100000));
  rt_floor->add_option("--procs", procs, procs_help)->check(CLI::Range(0, 1000));
  auto* rt_dispatch = app.add_subcommand("rt-dispatch", "grid status -> N control responses");
  rt_dispatch->add_option("--ders", ders, "edge agents")->check(CLI::Range(1, 100000));
  rt_dispatch->add_option("--procs", procs, procs_help)->check(CLI::Range(0, 1000));
  rt_dispatch->add_option("--dir", dir, "working directory (replaced)");
  // The children of rt-floor and rt-dispatch, started by them.
  int first = 0, share = 0;
  std::string tag, prefix, substation;
  auto* rt_responders =
      app.add_subcommand("rt-responders", "(started by rt-floor) responders first..first+count");
  rt_responders->add_option("--first", first, "first responder")->required();
  rt_responders->add_option("--count", share, "responders")->required();
  rt_responders->add_option("--tag", tag, "in the client ids")->required();
  auto* rt_agents =
      app.add_subcommand("rt-agents", "(started by rt-dispatch) edge agents first..first+count");
  rt_agents->add_option("--first", first, "first agent")->required();
  rt_agents->add_option("--count", share, "agents")->required();
  rt_agents->add_option("--prefix", prefix, "of the DER ids")->required();
  rt_agents->add_option("--substation", substation, "the agents' substation")->required();
  rt_agents->add_option("--dir", dir, "working directory (state in dir/state)")->required();
  auto* minimal = app.add_subcommand("minimal-edge", "bare client, one telemetry message a second");
  minimal->add_option("--duration-s", duration_s, "how long to run");
  int fleet_ders = 100000;
  std::string policy = "pro_rata";
  int repeats = 5;
  auto* alloc = app.add_subcommand("alloc", "allocation down a virtual DER tree vs one pass");
  alloc->add_option("--ders", fleet_ders, "DERs in the tree")->check(CLI::Range(1, 10000000));
  alloc->add_option("--policy", policy, "every virtual DER's policy")
      ->check(CLI::IsMember({"pro_rata", "soc_balance", "merit_order", "fair_share"}));
  alloc->add_option("--repeats", repeats, "timed runs after one warm-up; medians reported")
      ->check(CLI::Range(1, 10000));
  auto* memory = app.add_subcommand("vder-memory", "resident bytes per DER with the fleet loaded");
  memory->add_option("--ders", fleet_ders, "DERs loaded")->check(CLI::Range(1, 10000000));
  int intervals = 2016;
  int schedule_repeats = 21;
  auto* schedule = app.add_subcommand("schedule", "closed-form charging optimum vs GLPK's LP");
  schedule->add_option("--intervals", intervals, "5-minute prices (2016: a week)")
      ->check(CLI::Range(1, 1000000));
  schedule->add_option("--repeats", schedule_repeats, "timed runs after one warm-up; medians")
      ->check(CLI::Range(1, 100000));
  derms::bench::HistoryBenches history(&app);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  if (history.chosen()) return history.Run();
  // A round trip's processes hold up to a thousand sockets each: take all
  // the descriptors we may (children inherit the limit).
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
  }

  if (*loadgen) return LoadGen(broker, ders, messages, qos);
  if (*count) return Count(broker, messages, timeout_s);
  if (*ingest) return Ingest(broker, messages, db, timeout_s);
  if (*rt_floor) return RoundTripFloor(broker, ders, procs, timeout_s);
  if (*rt_dispatch) return RoundTripDispatch(broker, ders, procs, dir, timeout_s);
  if (*rt_responders) return RoundTripResponders(broker, tag, first, share);
  if (*rt_agents) return RoundTripAgents(broker, prefix, substation, dir, first, share);
  if (*alloc) return Alloc(fleet_ders, *derms::dispatch::ParsePolicy(policy), repeats);
  if (*memory) return VderMemory(fleet_ders);
  if (*schedule) return Schedule(intervals, schedule_repeats);
  return MinimalEdge(broker, duration_s);
}
