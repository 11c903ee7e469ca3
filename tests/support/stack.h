// Integration-test building blocks: a temporary directory, an aggregator and
// a set of edge agents each running on their own thread, an edge agent in
// its own process (to be killed), and a plain MQTT client that collects what
// it receives. Everything stops in its destructor, however a test ends.
#ifndef DERMS_TESTS_SUPPORT_STACK_H_
#define DERMS_TESTS_SUPPORT_STACK_H_

#include <fmt/format.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cloud_aggregator/service/aggregator.h"
#include "common/blocking_queue.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/mqtt/mqtt_client.h"
#include "common/topics.h"
#include "edge_agent/agent/edge_agent.h"
#include "edge_agent/agent/runner.h"
#include "edge_agent/devices/simulated.h"

namespace derms::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/derms-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A battery announcing itself, for tests that play a DER by hand.
inline v1::DerBirth BatteryBirth(const std::string& der_id, const std::string& substation,
                                 int64_t telemetry_interval_s, double max_kw = 5,
                                 double capacity_kwh = 10) {
  v1::DerBirth b;
  b.set_der_id(der_id);
  b.set_bd_seq(1);
  b.set_der_type(v1::BATTERY);
  b.set_max_discharge_kw(max_kw);
  b.set_max_charge_kw(max_kw);
  b.set_energy_capacity_kwh(capacity_kwh);
  b.set_substation_id(substation);
  b.set_telemetry_interval_s(telemetry_interval_s);
  b.set_timestamp_ms(WallNowMs());
  return b;
}

// A substation's grid status at nominal frequency and voltage.
inline v1::GridStatus GridStatusOf(const std::string& substation, double load_kw,
                                   double supply_kw) {
  v1::GridStatus g;
  g.set_substation_id(substation);
  g.set_timestamp_ms(WallNowMs());
  g.set_load_kw(load_kw);
  g.set_supply_kw(supply_kw);
  g.set_frequency_hz(60);
  g.set_voltage_pu(1);
  return g;
}

// Polls `done` every 20 ms for up to `timeout`; true once it holds. Waiting
// for an outcome, not timing it: the timeout only bounds a failing test.
inline bool WaitFor(const std::function<bool()>& done,
                    std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

class AggregatorThread {
 public:
  AggregatorThread(aggregator::AggregatorOptions options, Clock clock = Clock()) {
    auto created = aggregator::Aggregator::Create(options, clock);
    if (!created.ok()) throw std::runtime_error(created.status().ToString());
    aggregator_ = std::move(created).value();
    thread_ = std::thread([this] { aggregator_->Run(stop_, &reload_); });
    // Tests start talking once the aggregator listens.
    if (!WaitFor([this] { return aggregator_->stats().ready; })) {
      throw std::runtime_error("aggregator did not get ready");
    }
  }
  ~AggregatorThread() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // As SIGHUP does for derms-aggregator: re-read the virtual DERs.
  void RequestReload() { reload_ = true; }
  aggregator::Aggregator& operator*() { return *aggregator_; }
  aggregator::Aggregator* operator->() { return aggregator_.get(); }

 private:
  std::unique_ptr<aggregator::Aggregator> aggregator_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> reload_{false};
  std::thread thread_;
};

class AgentsThread {
 public:
  explicit AgentsThread(std::vector<std::unique_ptr<edge::EdgeAgent>> agents, Clock clock = Clock())
      : agents_(std::move(agents)), clock_(clock) {
    thread_ = std::thread([this] {
      edge::RunnerOptions options;
      options.tick = std::chrono::milliseconds(20);
      edge::RunAgents(agents_, clock_, stop_, options);
    });
  }
  ~AgentsThread() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  edge::EdgeAgent& operator[](size_t i) { return *agents_[i]; }

 private:
  std::vector<std::unique_ptr<edge::EdgeAgent>> agents_;
  Clock clock_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

inline edge::AgentOptions AgentOptionsFor(const std::string& broker_uri, const std::string& der_id,
                                          derms::v1::DerType type, const std::string& substation,
                                          const std::string& state_dir) {
  edge::AgentOptions o;
  o.broker_uri = broker_uri;
  o.der_id = der_id;
  o.substation_id = substation;
  o.nameplate.type = type;
  o.nameplate.max_discharge_kw = type == derms::v1::EV_CHARGER ? 0 : 10;
  o.nameplate.max_charge_kw = type == derms::v1::PV ? 0 : 10;
  o.nameplate.energy_capacity_kwh = 40;
  o.telemetry_interval_s = 1;
  o.state_dir = state_dir;
  o.reconnect_min_ms = 100;
  o.reconnect_max_ms = 1000;
  return o;
}

inline std::unique_ptr<edge::EdgeAgent> MakeAgent(const edge::AgentOptions& o,
                                                  std::unique_ptr<edge::Device> device = nullptr) {
  if (!device) device = edge::MakeSimulatedDevice(o.nameplate, 7, WallNowMs());
  auto agent = edge::EdgeAgent::Create(o, std::move(device));
  if (!agent.ok()) throw std::runtime_error(agent.status().ToString());
  return std::move(agent).value();
}

// derms-edge-agent in a child process, so a test can kill it like a crash.
class AgentProcess {
 public:
  AgentProcess(const std::string& broker_uri, const std::string& der_id,
               const std::string& state_dir) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(DERMS_EDGE_AGENT_BIN, "derms-edge-agent", "--broker", broker_uri.c_str(), "--der-id",
              der_id.c_str(), "--type", "BATTERY", "--substation", "sub-p", "--max-discharge-kw",
              "5", "--max-charge-kw", "5", "--capacity-kwh", "10", "--telemetry-interval-s", "1",
              "--state-dir", state_dir.c_str(), "--log-level", "warn", nullptr);
      std::_Exit(127);
    }
  }
  ~AgentProcess() { Kill(); }
  // SIGKILL: no clean disconnect, so the broker publishes the will.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// A plain client that records everything under its subscriptions.
class TestClient {
 public:
  // `persistent` keeps a broker session (subscriptions, queued messages)
  // across Reconnect.
  explicit TestClient(const std::string& broker_uri, const std::vector<std::string>& filters = {},
                      bool persistent = false) {
    static std::atomic<int> n{0};
    auto c = mqtt::Client::Create(broker_uri, fmt::format("test-{}-{}", ::getpid(), ++n));
    if (!c.ok()) throw std::runtime_error(c.status().ToString());
    client_ = std::move(c).value();
    client_->SetMessageHandler([this](mqtt::Message m) { inbox_.Push(std::move(m)); });
    options_.clean_start = !persistent;
    options_.session_expiry_s = persistent ? 600 : 0;
    Reconnect();
    if (!filters.empty()) {
      Status s = client_->Subscribe(filters, 1, std::chrono::seconds(5));
      if (!s.ok()) throw std::runtime_error(s.ToString());
    }
  }
  ~TestClient() { client_->ClearHandlers(); }  // before inbox_ goes
  void Reconnect() {
    Status s = client_->Connect(options_, std::chrono::seconds(5));
    if (!s.ok()) throw std::runtime_error(s.ToString());
  }
  Status Publish(const std::string& topic, const std::string& payload, bool retained = false,
                 const std::string& response_topic = "", const std::string& correlation = "") {
    return client_->PublishAndWait(
        mqtt::Message{topic, payload, 1, retained, response_topic, correlation},
        std::chrono::seconds(5));
  }
  // The next message whose topic is `topic` (any, when empty) and that
  // `accept` likes, or nullopt after `timeout`. Messages passed over are
  // dropped.
  std::optional<mqtt::Message> Next(const std::string& topic,
                                    const std::function<bool(const mqtt::Message&)>& accept = {},
                                    std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = inbox_.PopFor(std::chrono::milliseconds(50));
      if (m && std::getenv("DERMS_TEST_DEBUG")) {
        fmt::print(stderr, "test client got '{}' ({} bytes)\n", m->topic, m->payload.size());
      }
      if (m && (topic.empty() || m->topic == topic) && (!accept || accept(*m))) return m;
    }
    return std::nullopt;
  }

 private:
  std::unique_ptr<mqtt::Client> client_;
  mqtt::ConnectOptions options_;
  BlockingQueue<mqtt::Message> inbox_;
};

// First column of the first row of `sql` on the database at `db`, read-only
// (the aggregator's writer keeps going), as an integer; -1 on error.
inline int64_t QueryInt(const std::string& db, const std::string& sql) {
  sqlite3* conn = nullptr;
  int64_t result = -1;
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(conn, 5000);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      result = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(conn);
  return result;
}

inline aggregator::AggregatorOptions AggregatorOptionsFor(const std::string& broker_uri,
                                                          const TempDir& dir) {
  aggregator::AggregatorOptions o;
  o.broker_uri = broker_uri;
  o.db_path = dir / "derms.db";
  o.client_id = fmt::format("aggregator-{}", ::getpid());
  o.status_interval_s = 1;
  return o;
}

}  // namespace derms::testing

#endif  // DERMS_TESTS_SUPPORT_STACK_H_
