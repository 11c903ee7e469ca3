// Verified, rotated online backups of the aggregator's SQLite history, and
// restore from one.
//
// A backup reads the live database on a connection of its own, inside one
// read transaction: in WAL mode that costs the aggregator's writer what any
// reader costs (the WAL cannot be checkpointed past the snapshot while it is
// held), never a lock wait. The copy is made with SQLite's online backup API
// from that same snapshot, verified (integrity_check, and every table's row
// count against the source's), fsync'ed and only then renamed to its final
// name, so a reader of the backup directory never sees half a backup. A
// backup is a single self-contained file (rollback-journal mode, no -wal).
//
// Every function here blocks on disk I/O (seconds for a large database) and
// may be called from any thread, but never from the aggregator's writer
// thread. Calls share no state; two backups into one directory at once are
// refused (a lock file in the directory), restore requires the aggregator to
// be stopped (DbLock).
#ifndef DERMS_CLOUD_AGGREGATOR_STORAGE_BACKUP_H_
#define DERMS_CLOUD_AGGREGATOR_STORAGE_BACKUP_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace derms::storage {

struct BackupOptions {
  // The live database (normally WAL mode). Opened read-only; never written.
  std::string db_path = "./var/derms.db";
  // Where backups go (the "second region"); created if missing. REQUIRED.
  std::string dir;
  // Rotation: the newest `keep` backups in `dir` (this one included) stay,
  // older `derms-*.db` files are removed. At least 1.
  int keep = 7;
  // Run after each verified backup through `/bin/sh -c`, with the environment
  // variable DERMS_BACKUP_FILE set to the backup's absolute path, e.g.
  // `rclone copy "$DERMS_BACKUP_FILE" remote:derms/`. Its stdin is /dev/null,
  // stdout and stderr are inherited. A failure is reported, the backup kept.
  // Empty: no command.
  std::string command;
  // Stop the command (SIGTERM to its process group, SIGKILL 5 s later) after
  // this many seconds. At least 1.
  int command_timeout_s = 600;
};

struct BackupReport {
  // The verified backup: `<dir>/derms-YYYYMMDDTHHMMSSmmmZ[-N].db`.
  std::string path;
  int64_t bytes = 0;
  // Snapshot, copy, verification, fsync and rename (not rotation or command).
  int64_t duration_ms = 0;
  // How long the read transaction on the source was held: the time during
  // which the aggregator's WAL could not be checkpointed past the snapshot.
  int64_t snapshot_ms = 0;
  // Rows of every ordinary table at the snapshot (equal in the backup).
  std::map<std::string, int64_t> row_counts;
  // Files removed by rotation: older backups and stale `.partial` files.
  std::vector<std::string> removed;
  // Set when a file could not be removed by rotation (the backup is good).
  std::string rotate_error;
  // Set when the command ran: its exit status, or 128 + signal number when a
  // signal ended it (as a shell reports it).
  std::optional<int> command_exit;
  // Empty when there was no command or it exited 0; otherwise what went
  // wrong: non-zero exit, signal, timeout, or why it could not start.
  std::string command_error;
};

// Backs `options.db_path` up into `options.dir`, verifies the copy, rotates
// and runs the command (see the file comment). `now_ms` (epoch ms, UTC) names
// the backup; if that name exists, `-1`, `-2`, ... is appended.
// Errors (Status::code()): "invalid_argument" (options), "not_found" (no
// database), "in_use" (another backup into `dir` is running),
// "storage_error" (SQLite or file system, nothing kept), "verify_failed"
// (the copy failed a check, named with table, expected and found rows; the
// copy was removed). A failed command or rotation is not an error: see the
// report.
[[nodiscard]] StatusOr<BackupReport> RunBackup(const BackupOptions& options, int64_t now_ms);

struct VerifyReport {
  std::string path;
  int64_t bytes = 0;
  // Rows of every ordinary table (sqlite_* internal and virtual tables are
  // left out).
  std::map<std::string, int64_t> row_counts;
};

// Opens `path` read-only and checks it: not empty, a SQLite database,
// `PRAGMA integrity_check` answers exactly "ok", at least one table, and
// every table can be counted. integrity_check finds damage to the file's
// structure (pages, b-trees, indexes against tables), not a changed byte
// inside a stored value.
[[nodiscard]] StatusOr<VerifyReport> VerifyBackup(const std::string& path);

// The backups (`derms-<timestamp>[-N].db`) in `dir`, newest first, as
// `<dir>/<name>`. Other files are ignored; a missing dir has none.
std::vector<std::string> ListBackups(const std::string& dir);

// An exclusive flock(2) on `<db_path>.lock`, held by the aggregator while it
// runs so that restore cannot replace the database under it. Released by the
// destructor (or when the process ends). Movable, not copyable. Locks conflict
// between processes and between two DbLocks of one process.
class DbLock {
 public:
  // Creates the lock file if missing. Fails at once, without waiting, when
  // another holder has it.
  [[nodiscard]] static StatusOr<DbLock> Acquire(const std::string& db_path);

  DbLock(DbLock&& other) noexcept;
  DbLock& operator=(DbLock&& other) noexcept;
  DbLock(const DbLock&) = delete;
  DbLock& operator=(const DbLock&) = delete;
  ~DbLock();

  const std::string& lock_path() const { return lock_path_; }

 private:
  DbLock(int fd, std::string lock_path) : fd_(fd), lock_path_(std::move(lock_path)) {}
  void Release();

  int fd_ = -1;
  std::string lock_path_;
};

struct RestoreOptions {
  // The backup to restore (verified first; a damaged one is refused).
  std::string backup_path;
  // The database to replace; created (with its directory) if missing.
  std::string db_path = "./var/derms.db";
  // Copy the current database aside to `<db_path>.before-restore-<UTC
  // timestamp>` (one file) before replacing it.
  bool keep_previous = true;
};

struct RestoreReport {
  std::string db_path;
  // Rows of every table of the restored database (equal to the backup's).
  std::map<std::string, int64_t> row_counts;
  // Where the previous database was kept; empty when it was not (none
  // existed, or keep_previous was false).
  std::string previous_path;
  int64_t duration_ms = 0;
};

// Replaces the contents of `db_path` with the backup's, through SQLite's
// backup API on a connection to `db_path` (an existing WAL is handled by
// SQLite). In order: takes the DbLock on `db_path` (refused while the
// aggregator runs), verifies the backup (refused, target untouched, if
// damaged), keeps the previous database aside, copies, sets journal_mode=WAL
// and verifies the result's integrity and row counts against the backup's.
// Errors (Status::code()): "invalid_argument", "in_use" (the lock is held),
// "restore_refused" (damaged backup, or the previous database could not be
// kept aside; nothing changed), "storage_error" (the copy failed: SQLite
// rolls it back), "verify_failed" (the restored database does not match the
// backup; the message names the previous copy).
// REQUIRES: no other process writes `db_path` (the lock keeps the aggregator
// out; other tools must not write it either).
[[nodiscard]] StatusOr<RestoreReport> Restore(const RestoreOptions& options);

}  // namespace derms::storage

#endif  // DERMS_CLOUD_AGGREGATOR_STORAGE_BACKUP_H_
