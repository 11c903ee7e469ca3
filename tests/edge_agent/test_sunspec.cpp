// SunSpec as pure logic over register images: the model chain, points with
// scale factors and "not implemented" values, the reading and alarms of the
// contract, the feasible range, and the writes that carry a setpoint.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "edge_agent/agent/agent_options.h"
#include "edge_agent/sunspec/sunspec_mapping.h"
#include "edge_agent/sunspec/sunspec_model.h"
#include "edge_agent/sunspec/sunspec_options.h"
#include "tests/support/sunspec_image.h"

using derms::Status;
using derms::sunspec::ControlKind;
using derms::sunspec::ModelSet;
using derms::testing::SunSpecImage;
namespace ss = derms::sunspec;

namespace {

ss::RegisterReader ReaderOf(const SunSpecImage& image) {
  return [&image](uint32_t a, uint16_t n, std::vector<uint16_t>* out) {
    return image.Read(a, n, out);
  };
}

// A 5 kW three-phase PV inverter: W in tens of watts, volts in tenths,
// hertz in hundredths, limit in tenths of a percent.
SunSpecImage PvImage() {
  SunSpecImage image;
  image.Add(1).Add(103).Add(120).Add(121).Add(123).End();
  image.Scaled(103, "W", 3210, "W_SF", 1)
      .Scaled(103, "VAr", -150, "VAr_SF", 0)
      .Scaled(103, "PhVphA", 239.5, "V_SF", -1)
      .Raw(103, "PhVphB", 2405)
      .Raw(103, "PhVphC", 0xFFFF)  // not implemented: left out of the mean
      .Scaled(103, "Hz", 59.98, "Hz_SF", -2)
      .Raw(103, "St", 4)
      .Raw(103, "Evt1", 0)
      .Scaled(120, "WRtg", 6000, "WRtg_SF", 0)
      .Scaled(121, "WMax", 5000, "WMax_SF", 2)
      .Raw(123, "WMaxLimPct", 1000)
      .Raw(123, "WMaxLim_Ena", 0)
      .Raw(123, "WMaxLimPct_SF", -1);
  return image;
}

// A 4 kW / 10 kWh battery inverter with the basic storage model.
SunSpecImage BatteryImage() {
  SunSpecImage image;
  image.Add(1).Add(101).Add(120).Add(124).End();
  image.Scaled(101, "W", -1500, "W_SF", 0)
      .Scaled(101, "VAr", 0, "VAr_SF", 0)
      .Scaled(101, "PhVphA", 230, "V_SF", 0)
      .Scaled(101, "Hz", 50, "Hz_SF", -2)
      .Raw(101, "St", 4)
      .Raw(101, "Evt1", 0)
      .Scaled(120, "WRtg", 4000, "WRtg_SF", 0)
      .Scaled(124, "WChaMax", 4000, "WChaMax_SF", 1)
      .Scaled(124, "ChaState", 55.5, "ChaState_SF", -1)
      .Scaled(124, "MinRsvPct", 10, "MinRsvPct_SF", 0)
      .Raw(124, "StorCtl_Mod", 0)
      .Raw(124, "InOutWRte_SF", -1);
  return image;
}

ModelSet Load(const SunSpecImage& image, std::vector<int64_t> wanted = {}) {
  auto headers = ss::DiscoverModels(image.base(), ReaderOf(image));
  REQUIRE(headers.ok());
  auto models = ss::ReadModelSet(*headers, wanted, ReaderOf(image));
  REQUIRE(models.ok());
  return models.value();  // a copy: GCC 12 misreads moving out of the variant
}

// Applies a plan's writes to the image, as the device would.
void Write(SunSpecImage* image, const ss::ControlPlan& plan) {
  for (const auto& w : plan.writes) {
    for (size_t i = 0; i < w.values.size(); ++i) {
      image->registers().at(w.address - image->base() + i) = w.values[i];
    }
  }
}

bool HasAlarm(const derms::edge::Reading& r, const std::string& code,
              derms::v1::Severity severity) {
  for (const auto& a : r.alarms) {
    if (a.code() == code && a.severity() == severity) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("discovery walks the model chain from the SunS marker to 0xFFFF", "[sunspec]") {
  SunSpecImage image = PvImage();
  auto headers = ss::DiscoverModels(40000, ReaderOf(image));
  REQUIRE(headers.ok());
  std::vector<uint16_t> ids;
  for (const auto& h : *headers) ids.push_back(h.id);
  CHECK(ids == std::vector<uint16_t>{1, 103, 120, 121, 123});
  // Each model starts right after the previous one: 2 + L registers.
  CHECK((*headers)[0].address == 40002);
  CHECK((*headers)[1].address == 40002 + 2 + 66);
  CHECK((*headers)[1].length == 50);
  CHECK((*headers)[2].address == image.Address(120));
}

TEST_CASE("discovery fails clearly without the marker or on a chain without end", "[sunspec]") {
  SunSpecImage image = PvImage();
  auto wrong_base = ss::DiscoverModels(50000, ReaderOf(image));
  REQUIRE_FALSE(wrong_base.ok());  // the read itself fails outside the image
  image.registers()[1] = 0x1234;
  auto no_marker = ss::DiscoverModels(40000, ReaderOf(image));
  REQUIRE_FALSE(no_marker.ok());
  CHECK(no_marker.status().message().find("no SunSpec marker") != std::string::npos);

  // A model whose length runs past the register space.
  SunSpecImage runaway(65000);
  runaway.registers().push_back(1);
  runaway.registers().push_back(60000);
  auto past = ss::DiscoverModels(65000, ReaderOf(runaway));
  REQUIRE_FALSE(past.ok());
  CHECK(past.status().message().find("past register 65535") != std::string::npos);
}

TEST_CASE("models named in the configuration must be on the device", "[sunspec]") {
  SunSpecImage image = PvImage();
  auto headers = ss::DiscoverModels(40000, ReaderOf(image));
  REQUIRE(headers.ok());
  auto some = ss::ReadModelSet(*headers, {103, 123}, ReaderOf(image));
  REQUIRE(some.ok());
  CHECK(some->size() == 2);
  auto missing = ss::ReadModelSet(*headers, {103, 124}, ReaderOf(image));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message() == "model 124 is configured but the device does not have it");
}

TEST_CASE("points are scaled by their scale factors; not-implemented values are absent",
          "[sunspec]") {
  ModelSet models = Load(PvImage());
  const ss::ModelData& inv = models.at(103);
  CHECK(inv.Value("W") == Approx(3210));
  CHECK(inv.Raw("W") == 321);
  CHECK(inv.Value("PhVphA") == Approx(239.5));
  CHECK(inv.Value("Hz") == Approx(59.98));
  CHECK_FALSE(inv.Value("PhVphC").has_value());
  CHECK(models.at(121).Value("WMax") == Approx(5000));

  SunSpecImage image = PvImage();
  image.Raw(103, "W", 0x8000);      // int16 not implemented
  image.Raw(103, "Hz_SF", 0x8000);  // sunssf not implemented: Hz unreadable
  image.Raw(103, "WH", 0);          // acc32 0: not accumulated
  ModelSet odd = Load(image);
  CHECK_FALSE(odd.at(103).Value("W").has_value());
  CHECK_FALSE(odd.at(103).Value("Hz").has_value());
  CHECK_FALSE(odd.at(103).Raw("WH").has_value());
  image.Raw(103, "WH", 70000).Raw(103, "WH_SF", 0);
  CHECK(Load(image).at(103).Value("WH") == Approx(70000));  // acc32 spans two registers
  image.Raw(103, "W", -1234);
  CHECK(Load(image).at(103).Value("W") == Approx(-12340));  // int16 sign kept
}

TEST_CASE("the reading maps to the contract's units", "[sunspec]") {
  ModelSet pv = Load(PvImage());
  derms::edge::Reading r = ss::ReadingOf(pv);
  CHECK(r.active_power_kw == Approx(3.21));
  CHECK(r.reactive_power_kvar == Approx(-0.15));
  CHECK(r.voltage_v == Approx((239.5 + 240.5) / 2));
  CHECK(r.frequency_hz == Approx(59.98));
  CHECK_FALSE(r.soc_pct.has_value());
  CHECK(r.alarms.empty());

  derms::edge::Reading b = ss::ReadingOf(Load(BatteryImage()));
  CHECK(b.active_power_kw == Approx(-1.5));
  REQUIRE(b.soc_pct.has_value());
  CHECK(*b.soc_pct == Approx(55.5));
}

TEST_CASE("event bits become alarms, hardware faults CRITICAL", "[sunspec]") {
  SunSpecImage image = PvImage();
  image.Raw(103, "Evt1", (1 << 15) | (1 << 8) | (1 << 5));
  derms::edge::Reading r = ss::ReadingOf(Load(image));
  CHECK(r.alarms.size() == 3);
  CHECK(HasAlarm(r, "HW_TEST_FAILURE", derms::v1::CRITICAL));
  CHECK(HasAlarm(r, "OVER_FREQUENCY", derms::v1::WARNING));
  CHECK(HasAlarm(r, "CABINET_OPEN", derms::v1::INFO));

  image.Raw(103, "Evt1", 1).Raw(103, "St", 7);
  r = ss::ReadingOf(Load(image));
  CHECK(HasAlarm(r, "GROUND_FAULT", derms::v1::CRITICAL));
  CHECK(HasAlarm(r, "INVERTER_FAULT", derms::v1::CRITICAL));

  image.Raw(103, "Evt1", 0xFFFFFFFF);  // not implemented: no alarms
  image.Raw(103, "St", 4);
  CHECK(ss::ReadingOf(Load(image)).alarms.empty());
}

TEST_CASE("700-series measurements and battery events map too", "[sunspec]") {
  SunSpecImage image;
  image.Add(1).Add(701).Add(702).Add(704).Add(802).End();
  image.Scaled(701, "W", 2500, "W_SF", 0)
      .Scaled(701, "Var", 100, "Var_SF", 0)
      .Scaled(701, "LNV", 231.2, "V_SF", -1)
      .Scaled(701, "Hz", 50.01, "Hz_SF", -3)
      .Raw(701, "Alrm", 1 << 7)
      .Raw(701, "InvSt", 3)
      .Scaled(702, "WMax", 5000, "W_SF", 0)
      .Scaled(802, "SoC", 80, "SoC_SF", 0)
      .Raw(802, "State", 3)
      .Raw(802, "Evt1", 1 << 20)
      .Scaled(802, "WChaRteMax", 3000, "WChaDisChaMax_SF", 0)
      .Raw(802, "WDisChaRteMax", 3500)
      .Raw(704, "WSet_SF", 0)
      .Raw(704, "WMaxLimPct_SF", 0);
  ModelSet models = Load(image);
  derms::edge::Reading r = ss::ReadingOf(models);
  CHECK(r.active_power_kw == Approx(2.5));
  CHECK(r.voltage_v == Approx(231.2));
  CHECK(r.frequency_hz == Approx(50.01));  // uint32 Hz
  REQUIRE(r.soc_pct.has_value());
  CHECK(*r.soc_pct == Approx(80));
  CHECK(HasAlarm(r, "OVER_TEMP", derms::v1::CRITICAL));
  CHECK(HasAlarm(r, "CONTACTOR_ERROR", derms::v1::CRITICAL));

  ss::Ratings ratings = ss::RatingsOf(models);
  CHECK(ratings.storage);
  CHECK(ratings.max_charge_kw == Approx(3.0));
  CHECK(ratings.max_discharge_kw == Approx(3.5));
  REQUIRE(ss::ControlKindOf(models, true) == ControlKind::kWSet704);
  CHECK(ss::CheckModels(models, true).ok());

  auto plan =
      ss::PlanControl(models, ratings, ss::RangeOf(models, ratings), ControlKind::kWSet704, -2.0);
  REQUIRE(plan.ok());
  Write(&image, *plan);
  ModelSet after = Load(image);
  CHECK(after.at(704).Value("WSet") == Approx(-2000));  // int32, two registers
  CHECK(after.at(704).Raw("WSetMod") == 1);
  CHECK(after.at(704).Raw("WSetEna") == 1);
}

TEST_CASE("ratings, range and the models a DER needs", "[sunspec]") {
  ModelSet pv = Load(PvImage());
  ss::Ratings r = ss::RatingsOf(pv);
  CHECK_FALSE(r.storage);
  CHECK(r.max_export_kw == Approx(5.0));  // 121 WMax wins over 120 WRtg
  auto range = ss::RangeOf(pv, r);
  CHECK(range.min_kw == 0);
  CHECK(range.max_kw == Approx(5.0));
  CHECK(ss::CheckModels(pv, false).ok());
  CHECK_FALSE(ss::CheckModels(pv, true).ok());  // no storage model

  SunSpecImage battery_image = BatteryImage();
  ModelSet battery = Load(battery_image);
  ss::Ratings br = ss::RatingsOf(battery);
  CHECK(br.max_charge_kw == Approx(4.0));
  CHECK(br.max_discharge_kw == Approx(4.0));
  auto brange = ss::RangeOf(battery, br);
  CHECK(brange.min_kw == Approx(-4.0));
  CHECK(brange.max_kw == Approx(4.0));
  battery_image.Raw(124, "ChaState", 100);  // 10 %: at the reserve, no discharge
  auto low = ss::RangeOf(Load(battery_image), br);
  CHECK(low.max_kw == 0);
  CHECK(low.min_kw == Approx(-4.0));

  ModelSet no_control = Load(PvImage(), {1, 103, 121});
  Status s = ss::CheckModels(no_control, false);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message() == "a PV DER needs model 704 or 123 for its power limit");
}

TEST_CASE("a PV limit is WMaxLimPct of WMax, enabled last, clamped to the range", "[sunspec]") {
  SunSpecImage image = PvImage();
  ModelSet models = Load(image);
  ss::Ratings r = ss::RatingsOf(models);
  REQUIRE(ss::ControlKindOf(models, false) == ControlKind::kWMaxLimPct123);
  auto plan = ss::PlanControl(models, r, ss::RangeOf(models, r), ControlKind::kWMaxLimPct123, 2.0);
  REQUIRE(plan.ok());
  REQUIRE(plan->writes.size() == 2);
  CHECK(plan->writes[0].address == image.AddressOf(123, "WMaxLimPct"));
  CHECK(plan->writes[0].values == std::vector<uint16_t>{400});  // 40.0 % at SF -1
  CHECK(plan->writes[1].address == image.AddressOf(123, "WMaxLim_Ena"));
  CHECK(plan->writes[1].values == std::vector<uint16_t>{1});
  CHECK(*plan->applied_kw == Approx(2.0));

  auto over = ss::PlanControl(models, r, ss::RangeOf(models, r), ControlKind::kWMaxLimPct123, 9.0);
  REQUIRE(over.ok());
  CHECK(*over->applied_kw == Approx(5.0));
  CHECK(over->writes[0].values == std::vector<uint16_t>{1000});
  auto negative =
      ss::PlanControl(models, r, ss::RangeOf(models, r), ControlKind::kWMaxLimPct123, -3.0);
  REQUIRE(negative.ok());
  CHECK(*negative->applied_kw == 0);

  auto release =
      ss::PlanControl(models, r, ss::RangeOf(models, r), ControlKind::kWMaxLimPct123, {});
  REQUIRE(release.ok());
  REQUIRE(release->writes.size() == 1);
  CHECK(release->writes[0].address == image.AddressOf(123, "WMaxLim_Ena"));
  CHECK(release->writes[0].values == std::vector<uint16_t>{0});
}

TEST_CASE("a PV limit goes through model 704 when the device has it", "[sunspec]") {
  SunSpecImage image;
  image.Add(1).Add(701).Add(702).Add(123).Add(704).End();
  image.Scaled(701, "W", 1000, "W_SF", 0)
      .Scaled(702, "WMaxRtg", 8000, "W_SF", 0)
      .Raw(702, "WMax", 0xFFFF)  // not set: the rating stands
      .Raw(123, "WMaxLimPct_SF", 0)
      .Raw(704, "WMaxLimPct_SF", -2);
  ModelSet models = Load(image);
  ss::Ratings r = ss::RatingsOf(models);
  CHECK(r.max_export_kw == Approx(8.0));
  REQUIRE(ss::ControlKindOf(models, false) == ControlKind::kWMaxLimPct704);  // 704 over 123
  auto plan = ss::PlanControl(models, r, ss::RangeOf(models, r), ControlKind::kWMaxLimPct704, 2.0);
  REQUIRE(plan.ok());
  Write(&image, *plan);
  CHECK(image.At(image.AddressOf(704, "WMaxLimPct")) == 2500);  // 25.00 % at SF -2
  CHECK(image.At(image.AddressOf(704, "WMaxLimPctEna")) == 1);
  auto release =
      ss::PlanControl(models, r, ss::RangeOf(models, r), ControlKind::kWMaxLimPct704, {});
  REQUIRE(release.ok());
  Write(&image, *release);
  CHECK(image.At(image.AddressOf(704, "WMaxLimPctEna")) == 0);
}

TEST_CASE("a storage setpoint is a window on both model 124 rates", "[sunspec]") {
  SunSpecImage image = BatteryImage();
  ModelSet models = Load(image);
  ss::Ratings r = ss::RatingsOf(models);
  REQUIRE(ss::ControlKindOf(models, true) == ControlKind::kStorage124);
  auto range = ss::RangeOf(models, r);

  auto discharge = ss::PlanControl(models, r, range, ControlKind::kStorage124, 1.0);
  REQUIRE(discharge.ok());
  Write(&image, *discharge);
  ModelSet after = Load(image);
  CHECK(after.at(124).Value("OutWRte") == Approx(25.0));
  CHECK(after.at(124).Value("InWRte") == Approx(-25.0));  // forced discharge
  CHECK(after.at(124).Raw("StorCtl_Mod") == 3);
  CHECK(discharge->writes.back().point == "124.StorCtl_Mod");

  auto charge = ss::PlanControl(models, r, range, ControlKind::kStorage124, -6.0);
  REQUIRE(charge.ok());
  CHECK(*charge->applied_kw == Approx(-4.0));  // clamped to WChaMax
  Write(&image, *charge);
  after = Load(image);
  CHECK(after.at(124).Value("InWRte") == Approx(100.0));
  CHECK(after.at(124).Value("OutWRte") == Approx(-100.0));

  auto release = ss::PlanControl(models, r, range, ControlKind::kStorage124, {});
  REQUIRE(release.ok());
  Write(&image, *release);
  CHECK(Load(image).at(124).Raw("StorCtl_Mod") == 0);
}

TEST_CASE("a value that cannot be encoded is refused with the point's name", "[sunspec]") {
  SunSpecImage image = PvImage();
  image.Raw(123, "WMaxLimPct_SF", 0x8000);
  ModelSet models = Load(image);
  ss::Ratings r = ss::RatingsOf(models);
  auto plan = ss::PlanControl(models, r, ss::RangeOf(models, r), ControlKind::kWMaxLimPct123, 1.0);
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.status().message() == "point 123.WMaxLimPct: its scale factor is not implemented");

  SunSpecImage tiny = PvImage();
  tiny.Raw(123, "WMaxLimPct_SF", -3);  // 100 % would be 100000: too big for uint16
  ModelSet t = Load(tiny);
  auto big = ss::EncodePoint(t.at(123), "WMaxLimPct", 100);
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().message().find("outside [0, 65534]") != std::string::npos);
}

TEST_CASE("SunSpec options are validated with the field and the rule", "[sunspec]") {
  ss::SunSpecOptions o;
  CHECK(o.Validate().ok());
  o.port = 0;
  CHECK(o.Validate().message() == "sunspec.port 0 outside [1, 65535]");
  o = {};
  o.unit_id = 248;
  CHECK(o.Validate().message() == "sunspec.unit_id 248 outside [0, 247]");
  o = {};
  o.models = {1, 103, 999};
  CHECK(o.Validate().message().find("sunspec.models: model 999 is not one") == 0);
  o = {};
  o.poll_interval_ms = 10;
  CHECK_FALSE(o.Validate().ok());

  auto table = toml::parse(
      "[sunspec]\nhost = \"10.0.0.5\"\nport = 1502\nunit_id = 3\nmodels = [1, 103, 123]\n");
  ss::SunSpecOptions loaded;
  REQUIRE(ss::LoadSunSpecOptions(table, "agent.toml", &loaded).ok());
  CHECK(loaded.host == "10.0.0.5");
  CHECK(loaded.port == 1502);
  CHECK(loaded.unit_id == 3);
  CHECK(loaded.models == std::vector<int64_t>{1, 103, 123});
  auto typo = toml::parse("[sunspec]\nhots = \"x\"\n");
  Status s = ss::LoadSunSpecOptions(typo, "agent.toml", &loaded);
  CHECK(s.message() == "agent.toml [sunspec]: unknown key 'hots'");
  auto bad = toml::parse("[sunspec]\nmodels = [\"103\"]\n");
  CHECK(ss::LoadSunSpecOptions(bad, "agent.toml", &loaded).message() ==
        "agent.toml: sunspec.models must hold integers (model ids)");
}

TEST_CASE("the agent's options choose the SunSpec device and check it", "[sunspec]") {
  derms::edge::AgentOptions o;
  REQUIRE(derms::edge::LoadAgentOptions(DERMS_SOURCE_DIR "/edge_agent/edge-agent.example.toml", &o)
              .ok());
  CHECK(o.device == "simulated");
  CHECK(o.sunspec.port == 502);
  CHECK(o.sunspec.base_address == 40000);
  CHECK(o.sunspec.models.empty());
  o.device = "sunspec";
  CHECK(o.Validate().ok());  // the example is a BATTERY
  o.sunspec.unit_id = -1;
  CHECK(o.Validate().message() == "sunspec.unit_id -1 outside [0, 247]");
  o.sunspec.unit_id = 1;
  o.nameplate.type = derms::v1::EV_CHARGER;
  CHECK(o.Validate().message() == "device sunspec drives a PV or BATTERY DER, not EV_CHARGER");
  o.device = "modbus";
  CHECK(o.Validate().message() == "device 'modbus' must be simulated or sunspec");
}
