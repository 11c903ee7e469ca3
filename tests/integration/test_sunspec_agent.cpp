// End to end: derms-edge-agent (the real program, --device sunspec) against
// the SunSpec simulator as a Modbus TCP server and a real Mosquitto. Its
// telemetry carries the device's scaled values; a control is written to the
// device and answered APPLIED; a refused write is answered REJECTED with the
// Modbus reason; a lost device is a CRITICAL alarm while the agent stays up.
#include <fmt/format.h>
#include <modbus.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/blocking_queue.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/mqtt/mqtt_client.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"
#include "tests/support/mosquitto_broker.h"
#include "tests/support/sunspec_simulator.h"

using derms::testing::MosquittoBroker;
using derms::testing::SunSpecSimulator;

namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/derms-sunspec-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An MQTT client that keeps what arrives under its subscriptions.
class TestClient {
 public:
  TestClient(const std::string& broker_uri, const std::vector<std::string>& filters) {
    auto c = derms::mqtt::Client::Create(broker_uri, fmt::format("sunspec-test-{}", ::getpid()));
    if (!c.ok()) throw std::runtime_error(c.status().ToString());
    client_ = std::move(c).value();
    client_->SetMessageHandler([this](derms::mqtt::Message m) { inbox_.Push(std::move(m)); });
    derms::mqtt::ConnectOptions options;
    derms::Status s = client_->Connect(options, std::chrono::seconds(5));
    if (s.ok()) s = client_->Subscribe(filters, 1, std::chrono::seconds(5));
    if (!s.ok()) throw std::runtime_error(s.ToString());
  }
  ~TestClient() { client_->ClearHandlers(); }
  derms::Status Publish(const std::string& topic, const std::string& payload) {
    return client_->PublishAndWait(derms::mqtt::Message{topic, payload, 1, false, {}, {}},
                                   std::chrono::seconds(5));
  }
  // The next message on `topic` that `accept` likes, within 15 s.
  std::optional<derms::mqtt::Message> Next(
      const std::string& topic,
      const std::function<bool(const derms::mqtt::Message&)>& accept = {}) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = inbox_.PopFor(std::chrono::milliseconds(50));
      if (m && m->topic == topic && (!accept || accept(*m))) return m;
    }
    return std::nullopt;
  }

 private:
  std::unique_ptr<derms::mqtt::Client> client_;
  derms::BlockingQueue<derms::mqtt::Message> inbox_;
};

// derms-edge-agent in a child process with `args`; SIGTERM and reaped in the end.
class Program {
 public:
  explicit Program(std::vector<std::string> args) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
  }
  ~Program() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

derms::v1::Control Setpoint(const std::string& der, const std::string& id, double kw) {
  derms::v1::Control c;
  c.set_command_id(id);
  c.set_der_id(der);
  c.set_issued_at_ms(derms::WallNowMs());
  auto* in = c.add_intervals();
  in->set_duration_s(600);
  in->set_target_kw(kw);
  return c;
}

template <typename T>
T Parse(const derms::mqtt::Message& m) {
  T out;
  REQUIRE(derms::codec::ParseBinary(m.payload, m.topic, &out).ok());
  return out;
}

}  // namespace

TEST_CASE("the edge agent drives a SunSpec PV inverter over Modbus TCP", "[sunspec][e2e]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  SunSpecSimulator sim;
  TempDir dir;
  const std::string der = "pv-sunspec-1";
  TestClient client((*broker)->uri(),
                    {derms::topics::DerTelemetry(der), derms::topics::DerResponse(der)});
  Program agent({DERMS_EDGE_AGENT_BIN,
                 "--broker",
                 (*broker)->uri(),
                 "--der-id",
                 der,
                 "--type",
                 "PV",
                 "--substation",
                 "sub-s",
                 "--max-discharge-kw",
                 "5",
                 "--telemetry-interval-s",
                 "1",
                 "--state-dir",
                 dir.path(),
                 "--device",
                 "sunspec",
                 "--sunspec-port",
                 std::to_string(sim.port()),
                 "--sunspec-poll-ms",
                 "200",
                 "--sunspec-timeout-ms",
                 "300",
                 "--log-level",
                 "warn"});

  // Telemetry carries the device's own values, scaled.
  auto telemetry = [&](const std::function<bool(const derms::v1::Telemetry&)>& accept) {
    return client.Next(derms::topics::DerTelemetry(der), [&](const derms::mqtt::Message& m) {
      derms::v1::Telemetry t;
      return derms::codec::ParseBinary(m.payload, m.topic, &t).ok() && accept(t);
    });
  };
  auto first = telemetry([](const derms::v1::Telemetry& t) {
    return std::abs(t.active_power_kw() - 4.0) < 1e-6 && t.alarms_size() == 0;
  });
  REQUIRE(first.has_value());
  auto t = Parse<derms::v1::Telemetry>(*first);
  CHECK(t.voltage_v() == Approx(240.0));
  CHECK(t.frequency_hz() == Approx(60.0));
  CHECK(t.available_discharge_kw() == Approx(5.0));

  // A control goes to the device's WMaxLimPct, read back, and is answered.
  REQUIRE(client
              .Publish(derms::topics::DerControl(der),
                       derms::codec::ToBinary(Setpoint(der, "c-limit", 2.0)))
              .ok());
  auto applied = client.Next(derms::topics::DerResponse(der));
  REQUIRE(applied.has_value());
  auto r = Parse<derms::v1::ControlResponse>(*applied);
  CHECK(r.command_id() == "c-limit");
  CHECK(derms::v1::ControlStatus_Name(r.status()) == "APPLIED");
  CHECK(r.applied_kw() == Approx(2.0));
  CHECK(sim.RawAt(123, "WMaxLimPct") == 400);
  CHECK(sim.RawAt(123, "WMaxLim_Ena") == 1);
  CHECK(sim.OutputW() == Approx(2000));
  REQUIRE(telemetry([](const derms::v1::Telemetry& t) {
            return std::abs(t.active_power_kw() - 2.0) < 1e-6 && t.command_id() == "c-limit";
          }).has_value());

  // The device refuses the next one: REJECTED with the Modbus reason.
  sim.RefuseWrites(MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
  REQUIRE(client
              .Publish(derms::topics::DerControl(der),
                       derms::codec::ToBinary(Setpoint(der, "c-refused", 1.0)))
              .ok());
  auto rejected = client.Next(derms::topics::DerResponse(der), [](const derms::mqtt::Message& m) {
    derms::v1::ControlResponse resp;
    return derms::codec::ParseBinary(m.payload, m.topic, &resp).ok() &&
           resp.command_id() == "c-refused";
  });
  REQUIRE(rejected.has_value());
  auto rr = Parse<derms::v1::ControlResponse>(*rejected);
  CHECK(derms::v1::ControlStatus_Name(rr.status()) == "REJECTED");
  CHECK(rr.reason().find("Modbus exception 4") != std::string::npos);
  sim.RefuseWrites(0);

  // The device goes away: CRITICAL alarm, the agent stays up, and recovers.
  sim.DropConnections(true);
  auto lost = telemetry([](const derms::v1::Telemetry& t) {
    for (const auto& a : t.alarms()) {
      if (a.code() == "DEVICE_UNREACHABLE" && a.severity() == derms::v1::CRITICAL) return true;
    }
    return false;
  });
  REQUIRE(lost.has_value());
  CHECK(agent.running());
  sim.DropConnections(false);
  REQUIRE(telemetry([](const derms::v1::Telemetry& t) {
            return t.alarms_size() == 0 && t.active_power_kw() > 0;
          }).has_value());
}

TEST_CASE("the edge agent drives a SunSpec battery through model 124", "[sunspec][e2e]") {
  auto broker = MosquittoBroker::Start();
  REQUIRE(broker.ok());
  derms::testing::SunSpecSimOptions so;
  so.storage = true;
  so.soc_pct = 60;
  SunSpecSimulator sim(so);
  TempDir dir;
  const std::string der = "bat-sunspec-1";
  TestClient client((*broker)->uri(),
                    {derms::topics::DerTelemetry(der), derms::topics::DerResponse(der)});
  Program agent({DERMS_EDGE_AGENT_BIN,
                 "--broker",
                 (*broker)->uri(),
                 "--der-id",
                 der,
                 "--type",
                 "BATTERY",
                 "--substation",
                 "sub-s",
                 "--max-discharge-kw",
                 "5",
                 "--max-charge-kw",
                 "5",
                 "--capacity-kwh",
                 "10",
                 "--telemetry-interval-s",
                 "1",
                 "--state-dir",
                 dir.path(),
                 "--device",
                 "sunspec",
                 "--sunspec-port",
                 std::to_string(sim.port()),
                 "--sunspec-poll-ms",
                 "200",
                 "--log-level",
                 "warn"});
  auto telemetry = [&](const std::function<bool(const derms::v1::Telemetry&)>& accept) {
    return client.Next(derms::topics::DerTelemetry(der), [&](const derms::mqtt::Message& m) {
      derms::v1::Telemetry t;
      return derms::codec::ParseBinary(m.payload, m.topic, &t).ok() && accept(t);
    });
  };
  auto idle = telemetry([](const derms::v1::Telemetry& t) { return t.has_soc_pct(); });
  REQUIRE(idle.has_value());
  auto t = Parse<derms::v1::Telemetry>(*idle);
  CHECK(t.soc_pct() == Approx(60.0).margin(0.1));  // 600 at ChaState_SF -1
  CHECK(t.available_charge_kw() == Approx(5.0));

  REQUIRE(client
              .Publish(derms::topics::DerControl(der),
                       derms::codec::ToBinary(Setpoint(der, "c-charge", -2.0)))
              .ok());
  auto applied = client.Next(derms::topics::DerResponse(der));
  REQUIRE(applied.has_value());
  auto r = Parse<derms::v1::ControlResponse>(*applied);
  CHECK(derms::v1::ControlStatus_Name(r.status()) == "APPLIED");
  CHECK(static_cast<int16_t>(sim.RawAt(124, "InWRte")) == 400);
  CHECK(static_cast<int16_t>(sim.RawAt(124, "OutWRte")) == -400);
  CHECK(sim.RawAt(124, "StorCtl_Mod") == 3);
  REQUIRE(telemetry([](const derms::v1::Telemetry& t) {
            return std::abs(t.active_power_kw() + 2.0) < 1e-6;
          }).has_value());
  CHECK(sim.SocPct() > 60.0);  // charging
}
