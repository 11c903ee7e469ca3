// The inbox journal: each telemetry message appended to a file the moment it
// arrives, and dropped once SQLite has committed it. Paho acknowledges a QoS
// 1 message to the broker before the application sees it, and the store
// commits in batches, so without the journal a crash loses what was
// acknowledged but not yet committed. A write() reaches the kernel's page
// cache, which survives the process being killed (SIGKILL, a crash); like
// SQLite's synchronous=NORMAL, it does not claim to survive power loss.
//
// Files (in <db>-inbox/; never <db>-journal, SQLite's own rollback journal name):
//   <dir>/journal-<opened_ms>-<n>.log, entries of
//   [u32 body length][u32 FNV-1a of body][i64 received_ms][u16 topic length][topic][payload]
// A torn or damaged entry ends the replay of its file (logged).
#ifndef DERMS_CLOUD_AGGREGATOR_STORAGE_JOURNAL_H_
#define DERMS_CLOUD_AGGREGATOR_STORAGE_JOURNAL_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace derms::storage {

struct JournalEntry {
  int64_t received_ms = 0;
  std::string topic;
  std::string payload;
};

// Thread-safe.
class Journal {
 public:
  // Opens (creates) `dir` and reads every entry an earlier run left into
  // `replay`, oldest first. Those files stay until ReleaseReplayed.
  static StatusOr<std::unique_ptr<Journal>> Open(const std::string& dir,
                                                 std::vector<JournalEntry>* replay);
  ~Journal();

  // Appends one message; returns its sequence number (from 1). A write error
  // is counted, logged once, and returns 0: the message goes on unjournaled
  // (the store holds it until committed). The file that failed is cut back
  // to its last whole entry (or, if it cannot be, left for a new one), so
  // the journal recovers by itself once the disk has room again.
  uint64_t Append(const std::string& topic, const std::string& payload, int64_t received_ms);
  // Everything appended up to `seq` is committed: files holding nothing later
  // are deleted. REQUIRES: every entry up to `seq` was handed to the store
  // before the commit this is called after (sequence numbers follow arrival
  // order, and files hold increasing runs of them).
  void Release(uint64_t seq);
  // The replayed entries are committed: their files are deleted.
  void ReleaseReplayed();

  uint64_t appended() const { return appended_; }
  uint64_t write_errors() const { return write_errors_; }
  size_t files() const;

 private:
  struct Segment {
    std::string path;
    uint64_t last_seq = 0;
  };
  explicit Journal(std::string dir) : dir_(std::move(dir)) {}
  bool RollLocked();  // REQUIRES: mutex_ held
  // Counts and logs a failed append; returns 0. REQUIRES: mutex_ held
  uint64_t FailedLocked(const std::string& why);

  const std::string dir_;
  mutable std::mutex mutex_;
  int fd_ = -1;                        // GUARDED_BY(mutex_): the file being appended to
  Segment current_;                    // GUARDED_BY(mutex_)
  uint64_t current_bytes_ = 0;         // GUARDED_BY(mutex_)
  int64_t current_opened_ms_ = 0;      // GUARDED_BY(mutex_)
  std::deque<Segment> closed_;         // GUARDED_BY(mutex_), oldest first
  std::vector<std::string> replayed_;  // GUARDED_BY(mutex_)
  uint64_t next_seq_ = 1;              // GUARDED_BY(mutex_)
  uint64_t files_made_ = 0;            // GUARDED_BY(mutex_)
  bool failing_ = false;               // GUARDED_BY(mutex_): the last append failed
  bool torn_ = false;                  // GUARDED_BY(mutex_): the file may end in a torn entry
  uint64_t failed_in_row_ = 0;         // GUARDED_BY(mutex_)
  std::string run_prefix_;
  std::atomic<uint64_t> appended_{0};
  std::atomic<uint64_t> write_errors_{0};
};

}  // namespace derms::storage

#endif  // DERMS_CLOUD_AGGREGATOR_STORAGE_JOURNAL_H_
