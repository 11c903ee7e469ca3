#include "cloud_aggregator/modules/status/status_module.h"

#include "common/codec.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"

namespace derms::aggregator {
namespace {
constexpr const char* kVersion = "0.1.0";

uint64_t U(const MetricsSnapshot& s, const char* name) {
  return static_cast<uint64_t>(s.Value(name));
}
}  // namespace

std::string RenderStatusJson(const MetricsSnapshot& s, bool online, int64_t started_ms) {
  derms::v1::AggregatorStatus st;
  st.set_online(online);
  st.set_timestamp_ms(s.taken_ms);
  st.set_started_at_ms(started_ms);
  st.set_ders_known(static_cast<uint32_t>(U(s, "ders_known")));
  st.set_ders_online(static_cast<uint32_t>(U(s, "ders_online")));
  st.set_messages_accepted(U(s, "messages_accepted"));
  st.set_messages_rejected(U(s, "messages_rejected"));
  if (const auto* reasons = s.Find("messages_rejected_by_reason")) {
    for (const auto& [reason, n] : reasons->by_label) {
      (*st.mutable_rejected_by_reason())[reason] = static_cast<uint64_t>(n);
    }
  }
  st.set_version(kVersion);
  auto* h = st.mutable_history();
  h->set_rows_stored(U(s, "rows_stored"));
  h->set_telemetry_stored(U(s, "telemetry_stored"));
  h->set_rows_expired(U(s, "rows_expired"));
  h->set_storage_errors(U(s, "storage_errors"));
  h->set_rollup_watermark_ms(static_cast<int64_t>(s.Value("rollup_watermark_ms")));
  h->set_buckets_written(U(s, "rollup_buckets_written"));
  h->set_late_buckets(U(s, "rollup_late_buckets"));
  h->set_chunks_sealed(U(s, "rollup_chunks_sealed"));
  h->set_last_pass_ms(static_cast<int64_t>(s.Value("rollup_last_pass_ms")));
  h->set_journal_appended(U(s, "journal_appended"));
  h->set_journal_write_errors(U(s, "journal_write_errors"));
  h->set_storage_failing(s.Value("storage_failing") != 0);
  h->set_storage_last_error(s.Text("storage_last_error"));
  h->set_storage_failing_since_ms(static_cast<int64_t>(s.Value("storage_failing_since_ms")));
  h->set_storage_retries(U(s, "storage_retries"));
  h->set_storage_records_held(U(s, "storage_records_held"));
  h->set_storage_records_accepted(U(s, "storage_records_accepted"));
  h->set_storage_records_committed(U(s, "storage_records_committed"));
  h->set_ingest_paused(s.Value("ingest_paused") != 0);
  return codec::ToOperatorJson(st);
}

void StatusModule::AddJobs(Scheduler& scheduler) {
  scheduler.Every("status.publish", interval_s_ * 1000, [this](int64_t now_ms) {
    if (outbox_.online()) outbox_.Publish(topics::AggregatorStatus(), Render(true, now_ms), true);
  });
}

}  // namespace derms::aggregator
