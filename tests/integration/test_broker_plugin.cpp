// The broker plugin (broker_plugin/) loaded into a real Mosquitto on a free
// loopback port: identity, isolation between DERs, read-only operators,
// payload validation before anything reaches a real aggregator, per-DER
// rate limits, and broker/status.
#include <catch2/catch.hpp>
#include <fstream>
#include <limits>

#include "broker_plugin/password_file.h"
#include "tests/support/mosquitto_broker.h"
#include "tests/support/stack.h"

using namespace derms;
using namespace derms::testing;

namespace {

constexpr auto kWait = std::chrono::seconds(5);

// Users of the test broker; each one's password is "pw-" + its name.
const std::vector<std::string> kUsers = {"der-a", "der-b", "der-flood", "agg", "ops", "utility"};

std::string PasswordOf(const std::string& user) { return "pw-" + user; }

// A broker loading the plugin with a password file for kUsers.
std::unique_ptr<MosquittoBroker> StartPluginBroker(const TempDir& dir,
                                                   const std::string& more_options = "") {
  std::ofstream pw(dir / "passwd");
  for (const auto& user : kUsers) {
    auto line = broker::HashPasswordLine(user, PasswordOf(user), 1000);
    REQUIRE(line.ok());
    pw << *line << "\n";
  }
  pw.close();
  BrokerOptions o;
  o.allow_anonymous = false;
  o.extra_config = fmt::format(
      "plugin {}\n"
      "plugin_opt_password_file {}\n"
      "plugin_opt_aggregators agg\n"
      "plugin_opt_operators ops\n"
      "plugin_opt_dispatchers utility\n"
      "plugin_opt_status_interval_s 1\n"
      "{}\n",
      DERMS_BROKER_PLUGIN, dir / "passwd", more_options);
  auto broker = MosquittoBroker::Start(o);
  REQUIRE(broker.ok());
  return std::move(broker).value();
}

// A client logged in as `user` that records what it receives.
class UserClient {
 public:
  UserClient(const MosquittoBroker& broker, const std::string& user,
             const std::string& password = "") {
    static std::atomic<int> n{0};
    auto c = mqtt::Client::Create(broker.uri(), fmt::format("{}-{}-{}", user, ::getpid(), ++n));
    REQUIRE(c.ok());
    client_ = std::move(c).value();
    client_->SetMessageHandler([this](mqtt::Message m) { inbox_.Push(std::move(m)); });
    mqtt::ConnectOptions o;
    o.username = user;
    o.password = password.empty() ? PasswordOf(user) : password;
    connected_ = client_->Connect(o, kWait);
  }
  ~UserClient() {
    client_->ClearHandlers();
    client_->Disconnect();
  }
  const Status& connected() const { return connected_; }
  Status Subscribe(const std::string& filter) { return client_->Subscribe({filter}, 1, kWait); }
  Status Publish(const std::string& topic, const std::string& payload, int qos = 1) {
    mqtt::Message m{topic, payload, qos, false, "", ""};
    return qos == 0 ? client_->Publish(m) : client_->PublishAndWait(m, kWait);
  }
  // Every message received within `window`, `topic` only when not empty.
  std::vector<mqtt::Message> Drain(std::chrono::milliseconds window,
                                   const std::string& topic = "") {
    std::vector<mqtt::Message> out;
    auto deadline = std::chrono::steady_clock::now() + window;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = inbox_.PopFor(std::chrono::milliseconds(20));
      if (m && (topic.empty() || m->topic == topic)) out.push_back(std::move(*m));
    }
    return out;
  }
  // The next broker/status whose JSON `accept` likes.
  std::optional<std::string> NextStatus(const std::function<bool(const std::string&)>& accept) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = inbox_.PopFor(std::chrono::milliseconds(50));
      if (m && m->topic == "derms/v1/broker/status" && accept(m->payload)) return m->payload;
    }
    return std::nullopt;
  }

 private:
  std::unique_ptr<mqtt::Client> client_;
  BlockingQueue<mqtt::Message> inbox_;
  Status connected_;
};

v1::DerBirth BirthOf(const std::string& der_id, uint32_t interval_s) {
  auto b = BatteryBirth(der_id, "sub-p", interval_s);
  return b;
}

v1::Telemetry TelemetryOf(const std::string& der_id, uint64_t seq) {
  v1::Telemetry t;
  t.set_der_id(der_id);
  t.set_seq(seq);
  t.set_timestamp_ms(WallNowMs());
  t.set_active_power_kw(1);
  t.set_soc_pct(50);
  t.set_voltage_v(240);
  t.set_frequency_hz(60);
  return t;
}

bool Has(const std::string& json, const std::string& needle) {
  return json.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("the broker refuses wrong passwords, unknown users and anonymous clients",
          "[integration][broker_plugin]") {
  TempDir dir;
  auto broker = StartPluginBroker(dir);
  CHECK(UserClient(*broker, "der-a").connected().ok());
  CHECK_FALSE(UserClient(*broker, "der-a", "pw-der-b").connected().ok());
  CHECK_FALSE(UserClient(*broker, "der-z", "pw-der-z").connected().ok());
  // No user name at all.
  auto c = mqtt::Client::Create(broker->uri(), "anonymous-1");
  REQUIRE(c.ok());
  CHECK_FALSE((*c)->Connect(mqtt::ConnectOptions{}, kWait).ok());
  UserClient ops(*broker, "ops");
  REQUIRE(ops.Subscribe("derms/v1/broker/status").ok());
  CHECK(ops.NextStatus([](const std::string& j) { return Has(j, R"("refused":3)"); }));
}

TEST_CASE("a DER can neither publish as another DER nor read its controls, every time",
          "[integration][broker_plugin]") {
  TempDir dir;
  auto broker = StartPluginBroker(dir);
  UserClient a(*broker, "der-a");
  UserClient b(*broker, "der-b");
  UserClient agg(*broker, "agg");
  REQUIRE(a.connected().ok());
  REQUIRE(b.connected().ok());
  REQUIRE(agg.connected().ok());
  REQUIRE(agg.Subscribe("derms/v1/der/der-b/#").ok());
  REQUIRE(b.Subscribe("derms/v1/der/der-b/control").ok());

  // Publishing on B's topics, with payloads that would pass validation.
  constexpr int kRounds = 25;
  int attempts = 0, acknowledged = 0;
  for (int i = 0; i < kRounds; ++i) {
    for (const auto& [leaf, payload] : std::vector<std::pair<std::string, std::string>>{
             {"telemetry", codec::ToBinary(TelemetryOf("der-b", i + 1))},
             {"birth", codec::ToBinary(BirthOf("der-b", 1))},
             {"status", ""},
             {"response", ""}}) {
      ++attempts;
      acknowledged += a.Publish("derms/v1/der/der-b/" + leaf, payload).ok();
    }
  }
  // Subscribing to B's controls, directly and by wildcards.
  int sub_attempts = 0, sub_granted = 0;
  for (const char* filter : {"derms/v1/der/der-b/control", "derms/v1/der/der-b/cmd",
                             "derms/v1/der/+/control", "derms/v1/#", "#"}) {
    ++sub_attempts;
    sub_granted += a.Subscribe(filter).ok();
  }
  // The aggregator sends B a control: B gets it, A does not.
  v1::Control control;
  control.set_command_id("c-1");
  control.add_intervals()->set_target_kw(1);
  REQUIRE(agg.Publish("derms/v1/der/der-b/control", codec::ToBinary(control)).ok());

  auto reached = agg.Drain(std::chrono::milliseconds(500));
  size_t forged_seen = 0;
  for (const auto& m : reached) forged_seen += m.topic != "derms/v1/der/der-b/control";
  INFO(attempts << " publish attempts, " << acknowledged << " acknowledged; " << sub_attempts
                << " subscribe attempts, " << sub_granted << " granted");
  CHECK(acknowledged == 0);
  CHECK(forged_seen == 0);
  CHECK(sub_granted == 0);
  CHECK(b.Drain(std::chrono::milliseconds(300), "derms/v1/der/der-b/control").size() == 1);
  CHECK(a.Drain(std::chrono::milliseconds(300)).empty());

  UserClient ops(*broker, "ops");
  REQUIRE(ops.Subscribe("derms/v1/broker/status").ok());
  auto status = ops.NextStatus([&](const std::string& j) {
    return Has(j, fmt::format(R"("der_other_der":{})", attempts + 2));
  });
  CHECK(status.has_value());
  if (status) CHECK(Has(*status, R"("top_offenders":[{"name":"der-a")"));
}

TEST_CASE("operators read telemetry but cannot publish controls, nor can the dispatcher",
          "[integration][broker_plugin]") {
  TempDir dir;
  auto broker = StartPluginBroker(dir);
  UserClient a(*broker, "der-a");
  UserClient ops(*broker, "ops");
  UserClient utility(*broker, "utility");
  REQUIRE(a.Subscribe("derms/v1/der/der-a/control").ok());
  REQUIRE(ops.Subscribe("derms/v1/#").ok());
  v1::Control control;
  control.set_command_id("c-ops");
  control.add_intervals()->set_target_kw(3);
  CHECK_FALSE(ops.Publish("derms/v1/der/der-a/control", codec::ToBinary(control)).ok());
  CHECK_FALSE(utility.Publish("derms/v1/der/der-a/control", codec::ToBinary(control)).ok());
  CHECK(a.Drain(std::chrono::milliseconds(300)).empty());
  // What an operator may read arrives.
  REQUIRE(a.Publish("derms/v1/der/der-a/birth", codec::ToBinary(BirthOf("der-a", 1))).ok());
  REQUIRE(a.Publish("derms/v1/der/der-a/telemetry", codec::ToBinary(TelemetryOf("der-a", 1))).ok());
  CHECK(ops.Drain(std::chrono::milliseconds(500), "derms/v1/der/der-a/telemetry").size() == 1);
  // The dispatcher's own topics pass.
  CHECK(utility.Publish("derms/v1/grid/sub-p/status", codec::ToJson(GridStatusOf("sub-p", 10, 10)))
            .ok());
}

TEST_CASE("each kind of bad payload is refused at the broker and never reaches the aggregator",
          "[integration][broker_plugin]") {
  TempDir dir;
  auto broker = StartPluginBroker(dir);
  auto options = AggregatorOptionsFor(broker->uri(), dir);
  options.username = "agg";
  options.password = PasswordOf("agg");
  AggregatorThread agg(options);
  UserClient a(*broker, "der-a");
  REQUIRE(a.connected().ok());
  REQUIRE(a.Publish("derms/v1/der/der-a/birth", codec::ToBinary(BirthOf("der-a", 1))).ok());

  const std::string topic = "derms/v1/der/der-a/telemetry";
  auto nan = TelemetryOf("der-a", 2);
  nan.set_active_power_kw(std::numeric_limits<double>::quiet_NaN());
  auto inf = TelemetryOf("der-a", 2);
  inf.set_reactive_power_kvar(std::numeric_limits<double>::infinity());
  auto soc = TelemetryOf("der-a", 2);
  soc.set_soc_pct(250);
  std::vector<std::pair<std::string, std::string>> bad = {
      {"oversized", std::string(20000, '\x01')},
      {"undecodable", "\xff\xff\xff\xff"},
      {"wrong_type", codec::ToBinary(BirthOf("der-a", 1))},
      {"id_mismatch", codec::ToBinary(TelemetryOf("der-b", 2))},
      {"not_finite", codec::ToBinary(nan)},
      {"not_finite", codec::ToBinary(inf)},
      {"out_of_range", codec::ToBinary(soc)},
  };
  for (const auto& [reason, payload] : bad) {
    INFO(reason);
    Status s = a.Publish(topic, payload);
    CHECK_FALSE(s.ok());
    // QoS 1: the publisher is told "not authorised" (0x87).
    CHECK_THAT(s.message(), Catch::Contains("135"));
  }
  // A good sample after them gets through, so the aggregator has had its
  // chance to see everything before it.
  REQUIRE(a.Publish(topic, codec::ToBinary(TelemetryOf("der-a", 3))).ok());
  REQUIRE(WaitFor([&] {
    REQUIRE(agg->FlushStore().ok());
    return QueryInt(agg->db_path(), "SELECT COUNT(*) FROM telemetry WHERE der_id='der-a'") == 1;
  }));
  auto stats = agg->stats();
  CHECK(stats.rejected == 0);
  CHECK(stats.rejected_by_reason.empty());

  UserClient ops(*broker, "ops");
  REQUIRE(ops.Subscribe("derms/v1/broker/status").ok());
  auto status = ops.NextStatus([](const std::string& j) { return Has(j, R"("not_finite":2)"); });
  REQUIRE(status.has_value());
  for (const char* reason :
       {"oversized", "undecodable", "wrong_type", "id_mismatch", "out_of_range"}) {
    CHECK(Has(*status, fmt::format(R"("{}":1)", reason)));
  }
}

TEST_CASE("a flooding DER is held to its rate while another DER is served in full",
          "[integration][broker_plugin]") {
  TempDir dir;
  // Declared interval 1 s, factor 10: 10 a second after a burst of 10.
  auto broker = StartPluginBroker(dir);
  UserClient agg(*broker, "agg");
  REQUIRE(agg.Subscribe("derms/v1/der/+/telemetry").ok());
  UserClient flood(*broker, "der-flood");
  UserClient a(*broker, "der-a");
  REQUIRE(
      flood.Publish("derms/v1/der/der-flood/birth", codec::ToBinary(BirthOf("der-flood", 1))).ok());
  REQUIRE(a.Publish("derms/v1/der/der-a/birth", codec::ToBinary(BirthOf("der-a", 1))).ok());

  constexpr int kFlood = 3000;
  // Within its own rate whatever the flood's pace: the burst of 10 covers them.
  constexpr int kQuiet = 5;
  auto started = std::chrono::steady_clock::now();
  for (int i = 1; i <= kFlood; ++i) {
    (void)flood.Publish("derms/v1/der/der-flood/telemetry",
                        codec::ToBinary(TelemetryOf("der-flood", i)), 0);
    if (i % (kFlood / kQuiet) == 0) {
      REQUIRE(a.Publish("derms/v1/der/der-a/telemetry",
                        codec::ToBinary(TelemetryOf("der-a", i / (kFlood / kQuiet))))
                  .ok());
    }
  }
  // A marker: when it is through, everything before it has been.
  REQUIRE(
      a.Publish("derms/v1/der/der-a/telemetry", codec::ToBinary(TelemetryOf("der-a", 99))).ok());
  const double elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  auto got = agg.Drain(std::chrono::milliseconds(1000));
  size_t flood_got = 0, quiet_got = 0;
  for (const auto& m : got) {
    flood_got += m.topic == "derms/v1/der/der-flood/telemetry";
    quiet_got += m.topic == "derms/v1/der/der-a/telemetry";
  }
  INFO("flood: " << kFlood << " sent in " << elapsed_s << " s, " << flood_got << " delivered");
  CHECK(quiet_got == kQuiet + 1);
  CHECK(flood_got >= 10);
  CHECK(flood_got <= 10 + static_cast<size_t>(10 * (elapsed_s + 1.5)));

  UserClient ops(*broker, "ops");
  REQUIRE(ops.Subscribe("derms/v1/broker/status").ok());
  auto status = ops.NextStatus([&](const std::string& j) {
    return Has(j, fmt::format(R"("rate_limited":{})", kFlood - flood_got));
  });
  REQUIRE(status.has_value());
  CHECK(Has(*status, R"("top_offenders":[{"name":"der-flood")"));
}

TEST_CASE("a DER that keeps flooding is disconnected when the broker is told to",
          "[integration][broker_plugin]") {
  TempDir dir;
  auto broker = StartPluginBroker(dir, "plugin_opt_kick_after_drops 50");
  UserClient flood(*broker, "der-flood");
  REQUIRE(flood.Publish("derms/v1/der/der-flood/birth", codec::ToBinary(BirthOf("der-flood", 60)))
              .ok());
  Status last;
  for (int i = 1; i <= 200 && last.ok(); ++i) {
    last = flood.Publish("derms/v1/der/der-flood/telemetry",
                         codec::ToBinary(TelemetryOf("der-flood", i)), 0);
  }
  UserClient ops(*broker, "ops");
  REQUIRE(ops.Subscribe("derms/v1/broker/status").ok());
  CHECK(ops.NextStatus([](const std::string& j) { return Has(j, R"("kicked":1)"); }));
}

namespace {

// deploy/production/make-credentials.sh into `out` for `ders`; false on failure.
bool MakeCredentials(const std::string& out, const std::string& ders) {
  std::string cmd =
      fmt::format("{}/deploy/production/make-credentials.sh '{}' --ders {} >/dev/null",
                  DERMS_SOURCE_DIR, out, ders);
  return std::system(cmd.c_str()) == 0;
}

Status ConnectWithCertificate(const MosquittoBroker& broker, const std::string& ca,
                              const std::string& cert, const std::string& key,
                              std::unique_ptr<mqtt::Client>* out) {
  static std::atomic<int> n{0};
  auto c = mqtt::Client::Create(fmt::format("ssl://127.0.0.1:{}", broker.tls_port()),
                                fmt::format("tls-{}-{}", ::getpid(), ++n));
  if (!c.ok()) return c.status();
  mqtt::ConnectOptions o;
  o.ca_file = ca;
  o.cert_file = cert;
  o.key_file = key;
  Status s = (*c)->Connect(o, kWait);
  *out = std::move(c).value();
  return s;
}

}  // namespace

TEST_CASE("a DER's certificate is its identity, and a certificate from another CA is refused",
          "[integration][broker_plugin]") {
  TempDir dir;
  const std::string pki = dir / "pki";
  const std::string rogue = dir / "rogue";
  REQUIRE(MakeCredentials(pki, "der-a,der-b"));
  REQUIRE(MakeCredentials(rogue, "der-a"));
  BrokerOptions o;
  o.allow_anonymous = false;
  o.extra_config = fmt::format("plugin {}\nplugin_opt_aggregators agg\n", DERMS_BROKER_PLUGIN);
  o.tls_listener_config = fmt::format(
      "cafile {0}/ca.crt\ncertfile {0}/broker.crt\nkeyfile {0}/broker.key\n"
      "require_certificate true\nuse_identity_as_username true\n",
      pki);
  auto broker = MosquittoBroker::Start(o);
  REQUIRE(broker.ok());

  std::unique_ptr<mqtt::Client> a;
  REQUIRE(ConnectWithCertificate(**broker, pki + "/ca.crt", pki + "/ders/der-a.crt",
                                 pki + "/ders/der-a.key", &a)
              .ok());
  auto publish = [&](const std::string& topic, const std::string& payload) {
    return a->PublishAndWait(mqtt::Message{topic, payload, 1, false, "", ""}, kWait);
  };
  CHECK(publish("derms/v1/der/der-a/birth", codec::ToBinary(BirthOf("der-a", 1))).ok());
  CHECK_FALSE(publish("derms/v1/der/der-b/birth", codec::ToBinary(BirthOf("der-b", 1))).ok());

  std::unique_ptr<mqtt::Client> forged;
  CHECK_FALSE(ConnectWithCertificate(**broker, pki + "/ca.crt", rogue + "/ders/der-a.crt",
                                     rogue + "/ders/der-a.key", &forged)
                  .ok());
  std::unique_ptr<mqtt::Client> none;
  CHECK_FALSE(ConnectWithCertificate(**broker, pki + "/ca.crt", "", "", &none).ok());
}
