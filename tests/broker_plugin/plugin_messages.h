// Valid contract messages for the broker plugin's tests, and their bytes.
#ifndef DERMS_TESTS_BROKER_PLUGIN_PLUGIN_MESSAGES_H_
#define DERMS_TESTS_BROKER_PLUGIN_PLUGIN_MESSAGES_H_

#include <chrono>
#include <string>

#include "derms/v1/derms.pb.h"

namespace derms::testing {

inline int64_t PluginTestNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline v1::DerBirth ValidBirth(const std::string& der_id, uint32_t interval_s = 1) {
  v1::DerBirth b;
  b.set_der_id(der_id);
  b.set_bd_seq(1);
  b.set_der_type(v1::BATTERY);
  b.set_max_discharge_kw(5);
  b.set_max_charge_kw(5);
  b.set_energy_capacity_kwh(10);
  b.set_substation_id("sub-p");
  b.set_telemetry_interval_s(interval_s);
  b.set_timestamp_ms(PluginTestNowMs());
  return b;
}

inline v1::Telemetry ValidTelemetry(const std::string& der_id, uint64_t seq) {
  v1::Telemetry t;
  t.set_der_id(der_id);
  t.set_seq(seq);
  t.set_timestamp_ms(PluginTestNowMs());
  t.set_active_power_kw(1.5);
  t.set_soc_pct(50);
  t.set_voltage_v(240);
  t.set_frequency_hz(60);
  return t;
}

inline std::string Bytes(const google::protobuf::Message& m) { return m.SerializeAsString(); }

}  // namespace derms::testing

#endif  // DERMS_TESTS_BROKER_PLUGIN_PLUGIN_MESSAGES_H_
