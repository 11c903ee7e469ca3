// TOML configuration files: parse errors with file:line:col, typed Get with
// the wrong type rejected, and unknown keys reported by their dotted path;
// command-line flags declared with their keys.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/cli_overrides.h"
#include "common/config.h"
#include "common/option_set.h"

namespace config = derms::config;
namespace fs = std::filesystem;

namespace {

// A TOML file in the temp directory with a unique name, removed on scope exit.
class TempToml {
 public:
  explicit TempToml(const std::string& content) {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() / ("derms_test_config_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter++) + ".toml");
    std::ofstream out(path_, std::ios::trunc);
    out << content;
  }
  ~TempToml() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  TempToml(const TempToml&) = delete;
  TempToml& operator=(const TempToml&) = delete;
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

// Writes `content` to a temp file and parses it; requires success.
toml::table ParseOk(const std::string& content) {
  TempToml file(content);
  auto parsed = config::ParseFile(file.path());
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  return parsed.value();
}

void RequireConfigError(const derms::Status& s, const std::string& key) {
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == "config_error");
  CHECK_THAT(s.message(), Catch::Contains("agent.toml") && Catch::Contains(key));
}

const char* const kAgentToml = R"(
der_id = "bat-1"
telemetry_interval_s = 60
offline_buffer = true
[nameplate]
max_discharge_kw = 10
max_charge_kw = 7.5
tags = ["roof", "garage"]
)";

}  // namespace

TEST_CASE("a valid TOML file parses", "[unit][config]") {
  toml::table t = ParseOk(kAgentToml);
  CHECK(t["der_id"].value<std::string>() == std::optional<std::string>("bat-1"));
}

TEST_CASE("a syntax error names the file, line and column", "[unit][config]") {
  TempToml file("der_id = \"bat-1\"\n\nmax_kw = = 3\n");
  auto parsed = config::ParseFile(file.path());
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == "config_error");
  CHECK_THAT(parsed.status().message(), Catch::StartsWith(file.path() + ":3:"));
}

TEST_CASE("a missing file is a config_error naming it", "[unit][config]") {
  std::string path = (fs::temp_directory_path() / "derms_test_config_does_not_exist.toml").string();
  auto parsed = config::ParseFile(path);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == "config_error");
  CHECK_THAT(parsed.status().message(), Catch::Contains(path));
}

TEST_CASE("a double key reads floats and integers", "[unit][config]") {
  toml::table t = ParseOk(kAgentToml);
  double charge = 0, discharge = 0;
  REQUIRE(config::Get(t, "agent.toml", "nameplate.max_charge_kw", &charge).ok());
  REQUIRE(config::Get(t, "agent.toml", "nameplate.max_discharge_kw", &discharge).ok());
  CHECK(charge == 7.5);
  CHECK(discharge == 10.0);
}

TEST_CASE("a double key rejects a string or a bool", "[unit][config]") {
  toml::table t = ParseOk("a = \"10\"\nb = true\n");
  double v = 1.5;
  RequireConfigError(config::Get(t, "agent.toml", "a", &v), "a");
  RequireConfigError(config::Get(t, "agent.toml", "b", &v), "b");
  CHECK(v == 1.5);
}

TEST_CASE("an integer key reads integers and rejects floats", "[unit][config]") {
  toml::table t = ParseOk("interval_s = 60\nratio = 2.0\nname = \"x\"\n");
  int64_t v = 5;
  REQUIRE(config::Get(t, "agent.toml", "interval_s", &v).ok());
  CHECK(v == 60);
  RequireConfigError(config::Get(t, "agent.toml", "ratio", &v), "ratio");
  RequireConfigError(config::Get(t, "agent.toml", "name", &v), "name");
  CHECK(v == 60);
}

TEST_CASE("a bool key reads true and false", "[unit][config]") {
  toml::table t = ParseOk("on = true\noff = false\n");
  bool on = false, off = true;
  REQUIRE(config::Get(t, "agent.toml", "on", &on).ok());
  REQUIRE(config::Get(t, "agent.toml", "off", &off).ok());
  CHECK(on);
  CHECK_FALSE(off);
}

TEST_CASE("a bool key rejects a string", "[unit][config]") {
  toml::table t = ParseOk("s = \"true\"\n");
  bool v = false;
  RequireConfigError(config::Get(t, "agent.toml", "s", &v), "s");
  CHECK_FALSE(v);
}

TEST_CASE("a bool key rejects an integer instead of reading it as true or false",
          "[unit][config]") {
  // `dispatch_enabled = 0` or `= 2` is the wrong type, like 2.0 for an integer key.
  toml::table t = ParseOk("one = 1\nzero = 0\n");
  bool v = false;
  RequireConfigError(config::Get(t, "agent.toml", "one", &v), "one");
  CHECK_FALSE(v);
  bool w = true;
  RequireConfigError(config::Get(t, "agent.toml", "zero", &w), "zero");
  CHECK(w);
}

TEST_CASE("a string key reads strings and rejects other types", "[unit][config]") {
  toml::table t = ParseOk(kAgentToml);
  std::string id = "unset";
  REQUIRE(config::Get(t, "agent.toml", "der_id", &id).ok());
  CHECK(id == "bat-1");
  std::string s = "unset";
  RequireConfigError(config::Get(t, "agent.toml", "telemetry_interval_s", &s),
                     "telemetry_interval_s");
  CHECK(s == "unset");
}

TEST_CASE("a string list reads arrays of strings and rejects other elements", "[unit][config]") {
  toml::table t = ParseOk(kAgentToml);
  std::vector<std::string> tags;
  REQUIRE(config::Get(t, "agent.toml", "nameplate.tags", &tags).ok());
  CHECK(tags == std::vector<std::string>{"roof", "garage"});

  toml::table bad = ParseOk("tags = [\"roof\", 3]\nnot_array = \"roof\"\n");
  std::vector<std::string> v{"kept"};
  RequireConfigError(config::Get(bad, "agent.toml", "tags", &v), "tags");
  RequireConfigError(config::Get(bad, "agent.toml", "not_array", &v), "not_array");
  CHECK(v == std::vector<std::string>{"kept"});
}

TEST_CASE("a missing key leaves the value as it was", "[unit][config]") {
  toml::table t = ParseOk(kAgentToml);
  double d = 2.5;
  int64_t i = 7;
  bool b = true;
  std::string s = "default";
  std::vector<std::string> list{"a"};
  REQUIRE(config::Get(t, "agent.toml", "nameplate.latitude", &d).ok());
  REQUIRE(config::Get(t, "agent.toml", "reconnect_min_ms", &i).ok());
  REQUIRE(config::Get(t, "agent.toml", "default.enabled", &b).ok());
  REQUIRE(config::Get(t, "agent.toml", "state_dir", &s).ok());
  REQUIRE(config::Get(t, "agent.toml", "nameplate.model_tags", &list).ok());
  CHECK(d == 2.5);
  CHECK(i == 7);
  CHECK(b);
  CHECK(s == "default");
  CHECK(list == std::vector<std::string>{"a"});
}

TEST_CASE("known keys pass and a typo is reported with its dotted path", "[unit][config]") {
  const std::set<std::string> known = {"der_id",
                                       "telemetry_interval_s",
                                       "offline_buffer",
                                       "nameplate.max_discharge_kw",
                                       "nameplate.max_charge_kw",
                                       "nameplate.tags"};
  CHECK(config::CheckKnownKeys(ParseOk(kAgentToml), "agent.toml", known).ok());

  toml::table typo = ParseOk("der_id = \"bat-1\"\n[nameplate]\nmax_dischrge_kw = 10\n");
  derms::Status s = config::CheckKnownKeys(typo, "agent.toml", known);
  RequireConfigError(s, "nameplate.max_dischrge_kw");

  toml::table top = ParseOk("der_idd = \"bat-1\"\n");
  RequireConfigError(config::CheckKnownKeys(top, "agent.toml", known), "der_idd");
}

// A key given a flag (OptionSet::Cli) is settable on the command line: the
// flag overrides the file, a flag not given leaves the file's value, and
// the rule still applies after the override, naming the key.
TEST_CASE("an option's command-line flag is declared with its key and overrides the file") {
  int64_t duration = 300;
  double deadband = 0.1;
  std::string broker = "tcp://127.0.0.1:1883";
  config::OptionSet set("dispatch");
  set.Int("control_duration_s", &duration, 1, 86400, "how long a setpoint lasts")
      .Cli("--control-duration-s");
  set.Real("setpoint_deadband_kw", &deadband, 0, 1e12, "deadband").Cli("--deadband");
  set.Text("broker", &broker, config::OptionSet::TextRule::kRequired, "broker URI");  // no flag

  auto flags = set.CliFlags();
  REQUIRE(flags.size() == 2);
  CHECK(flags[0].flag == "--control-duration-s");
  CHECK(flags[0].key == "dispatch.control_duration_s");
  CHECK(flags[0].doc == "how long a setpoint lasts");

  CLI::App app;
  derms::CliOverrides overrides(&app);
  overrides.AddFlags(set);
  const char* argv[] = {"prog", "--control-duration-s", "0"};
  app.parse(3, const_cast<char**>(argv));
  auto file = toml::parse("[dispatch]\ncontrol_duration_s = 60\nsetpoint_deadband_kw = 2.5\n");
  REQUIRE(set.Read(file, "test.toml").ok());
  CHECK(duration == 60);
  overrides.Apply();
  CHECK(duration == 0);      // the flag wins
  CHECK(deadband == 2.5);    // no flag given: the file's value stays
  derms::Status s = set.Validate();
  CHECK(s.code() == "invalid_value");
  CHECK(s.message().find("dispatch.control_duration_s") != std::string::npos);
  CHECK(app.help().find("[config key dispatch.control_duration_s]") != std::string::npos);

  // A flag on a table option is a programming error caught at once.
  std::map<std::string, std::string> nodes;
  config::OptionSet tables("schedule");
  tables.IdMap("nodes", &nodes, "substation to pricing node");
  CHECK_THROWS_AS(tables.Cli("--nodes"), std::logic_error);
}
