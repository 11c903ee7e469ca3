#include "cloud_aggregator/storage/backup.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <regex>
#include <system_error>
#include <thread>
#include <tuple>

extern char** environ;

namespace derms::storage {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using Counts = std::map<std::string, int64_t>;

constexpr char kPartial[] = ".partial";
constexpr char kEnvVar[] = "DERMS_BACKUP_FILE";
// Held by RunBackup for its whole run: a second backup into the same
// directory is refused rather than racing the first's rotation.
constexpr char kDirLockName[] = ".derms-backup.lock";
constexpr int kCommandGraceS = 5;

int64_t MsSince(SteadyClock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count();
}

// strerror(3) is not thread-safe; this is.
std::string ErrnoText(int error) { return std::generic_category().message(error); }

Status Error(const char* code, std::string message) {
  return Status::Error(code, std::move(message));
}

// A file descriptor, closed on destruction.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens (creating if missing) `path` and takes an exclusive flock without
// waiting. Returns the descriptor, -1 with errno set on failure.
int LockFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// A SQLite connection, closed on destruction.
class Db {
 public:
  explicit Db(sqlite3* db = nullptr) : db_(db) {}
  Db(Db&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Db& operator=(Db&& other) noexcept {
    if (this != &other) {
      Close();
      db_ = std::exchange(other.db_, nullptr);
    }
    return *this;
  }
  ~Db() { Close(); }
  sqlite3* get() const { return db_; }
  void Close() {
    if (db_) sqlite3_close_v2(db_);
    db_ = nullptr;
  }

 private:
  sqlite3* db_;
};

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(stmt_); }
  bool prepared() const { return rc_ == SQLITE_OK && stmt_ != nullptr; }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

StatusOr<Db> Open(const std::string& path, int flags, const std::string& what) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) {
    return Error("storage_error", fmt::format("{} '{}' cannot be opened: {}", what, path,
                                              raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  // Only reached on lock contention that WAL readers do not normally meet
  // (e.g. another connection running WAL recovery).
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

Status Exec(sqlite3* db, const std::string& sql, const std::string& what) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = Error("storage_error", fmt::format("{}: {}", what, err ? err : sqlite3_errmsg(db)));
    sqlite3_free(err);
    return s;
  }
  return Status::Ok();
}

// The first column of the first row of `sql`, as text.
StatusOr<std::string> QueryText(sqlite3* db, const std::string& sql, const std::string& what) {
  Stmt stmt(db, sql);
  if (!stmt.prepared() || sqlite3_step(stmt.get()) != SQLITE_ROW) {
    return Error("storage_error", fmt::format("{}: {}: {}", what, sql, sqlite3_errmsg(db)));
  }
  const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
  return std::string(text ? reinterpret_cast<const char*>(text) : "");
}

std::string QuoteIdentifier(const std::string& name) {
  std::string quoted = "\"";
  for (char c : name) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// Rows of every ordinary table: sqlite_* internal tables and virtual tables
// (whose module may not be loaded here) are left out. The first read of a
// transaction, so inside BEGIN it fixes the snapshot. Errors are bare
// reasons; the caller names the database.
StatusOr<Counts> CountRows(sqlite3* db) {
  std::vector<std::string> tables;
  {
    Stmt stmt(db,
              "SELECT name FROM main.sqlite_schema WHERE type = 'table' "
              "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
              "AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name");
    if (!stmt.prepared()) {
      return Error("storage_error",
                   fmt::format("the schema cannot be read: {}", sqlite3_errmsg(db)));
    }
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0)));
    }
    if (rc != SQLITE_DONE) {
      return Error("storage_error",
                   fmt::format("the schema cannot be read: {}", sqlite3_errmsg(db)));
    }
  }
  Counts counts;
  for (const auto& table : tables) {
    Stmt stmt(db, "SELECT count(*) FROM main." + QuoteIdentifier(table));
    if (!stmt.prepared() || sqlite3_step(stmt.get()) != SQLITE_ROW) {
      return Error("storage_error", fmt::format("the rows of table '{}' cannot be counted: {}",
                                                table, sqlite3_errmsg(db)));
    }
    counts[table] = sqlite3_column_int64(stmt.get(), 0);
  }
  return counts;
}

// `PRAGMA integrity_check` must answer exactly one row, "ok".
Status CheckIntegrity(sqlite3* db) {
  Stmt stmt(db, "PRAGMA main.integrity_check");
  if (!stmt.prepared()) {
    return Error("verify_failed",
                 fmt::format("integrity_check could not run: {}", sqlite3_errmsg(db)));
  }
  std::vector<std::string> rows;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
    rows.emplace_back(text ? reinterpret_cast<const char*>(text) : "");
  }
  if (rc != SQLITE_DONE) {
    return Error("verify_failed",
                 fmt::format("integrity_check could not finish: {}", sqlite3_errmsg(db)));
  }
  if (rows.size() == 1 && rows[0] == "ok") return Status::Ok();
  std::string shown;
  for (size_t i = 0; i < rows.size() && i < 3; ++i) shown += (i ? "; " : "") + rows[i];
  return Error("verify_failed",
               fmt::format("integrity_check answered {} problem(s), not 'ok': {}{}", rows.size(),
                           shown, rows.size() > 3 ? "; ..." : ""));
}

// integrity_check, then the row counts. Errors are bare reasons.
StatusOr<Counts> CheckDatabase(sqlite3* db) {
  Status integrity = CheckIntegrity(db);
  if (!integrity.ok()) return integrity;
  auto counts = CountRows(db);
  if (!counts.ok()) return Error("verify_failed", counts.status().message());
  if (counts->empty()) return Error("verify_failed", "the database holds no tables");
  return counts;
}

// Every table of `expected` is in `found` with as many rows, and no other.
// `whose` names where `expected` came from ("the source at the snapshot").
Status CompareCounts(const Counts& expected, const Counts& found, const std::string& whose) {
  for (const auto& [table, rows] : expected) {
    auto it = found.find(table);
    if (it == found.end()) {
      return Error("verify_failed",
                   fmt::format("table '{}' is missing ({} has {} rows)", table, whose, rows));
    }
    if (it->second != rows) {
      return Error("verify_failed", fmt::format("table '{}' has {} rows, expected {} (as in {})",
                                                table, it->second, rows, whose));
    }
  }
  for (const auto& [table, rows] : found) {
    if (!expected.count(table)) {
      return Error("verify_failed",
                   fmt::format("table '{}' ({} rows) is not in {}", table, rows, whose));
    }
  }
  return Status::Ok();
}

// "YYYYMMDDTHHMMSSmmmZ" in UTC.
std::string Stamp(int64_t epoch_ms) {
  int64_t seconds = epoch_ms / 1000;
  int64_t millis = epoch_ms % 1000;
  if (millis < 0) {
    millis += 1000;
    --seconds;
  }
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec));
}

// `base + suffix`, or `base-N + suffix` with the smallest N making neither it
// nor its `.partial` exist.
std::string UniquePath(const std::string& base, const std::string& suffix) {
  for (int n = 0;; ++n) {
    std::string path = base + (n ? fmt::format("-{}", n) : "") + suffix;
    if (!Exists(path) && !Exists(path + kPartial)) return path;
  }
}

// Removes `path` and the side files SQLite may have left next to it.
void RemoveWithSideFiles(const std::string& path) {
  std::error_code ec;
  for (const char* side : {"", "-journal", "-wal", "-shm"}) fs::remove(path + side, ec);
}

Status Fsync(const std::string& path, bool directory) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0)));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) {
    return Error("storage_error", fmt::format("fsync of '{}' failed: {}", path, ErrnoText(errno)));
  }
  return Status::Ok();
}

// Copies the database of `src` (within its open read transaction, if it has
// one: then the copy is that snapshot) into a new file `dest_path`, created
// here (an existing file is an error). Returns the destination connection
// still open, so the caller can end its source transaction first.
StatusOr<Db> CopyIntoNewFile(sqlite3* src, const std::string& dest_path) {
  {
    Fd created(::open(dest_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (created.get() < 0) {
      return Error("storage_error",
                   fmt::format("'{}' cannot be created: {}", dest_path, ErrnoText(errno)));
    }
  }
  auto dst = Open(dest_path, SQLITE_OPEN_READWRITE, "copy");
  if (!dst.ok()) return dst.status();
  // Durability comes from one fsync of the finished file.
  Status s = Exec(dst->get(), "PRAGMA synchronous = OFF", "copy '" + dest_path + "'");
  if (!s.ok()) return s;
  sqlite3_backup* backup = sqlite3_backup_init(dst->get(), "main", src, "main");
  if (!backup) {
    return Error("storage_error", fmt::format("copy into '{}' cannot start: {}", dest_path,
                                              sqlite3_errmsg(dst->get())));
  }
  int step = sqlite3_backup_step(backup, -1);
  int finish = sqlite3_backup_finish(backup);
  if (step != SQLITE_DONE || finish != SQLITE_OK) {
    return Error("storage_error", fmt::format("copy into '{}' failed: {} ({})", dest_path,
                                              sqlite3_errstr(step != SQLITE_DONE ? step : finish),
                                              sqlite3_errmsg(dst->get())));
  }
  return dst;
}

// The copied header says WAL when the source is in WAL mode. Switches the
// copy to rollback-journal mode, so that it is one self-contained file that
// opens read-only anywhere, then closes it.
Status MakeSingleFile(Db dst, const std::string& dest_path) {
  auto mode = QueryText(dst.get(), "PRAGMA journal_mode = DELETE", "copy '" + dest_path + "'");
  if (!mode.ok()) return mode.status();
  if (*mode != "delete") {
    return Error("storage_error", fmt::format("copy '{}': journal_mode stayed '{}', not 'delete'",
                                              dest_path, *mode));
  }
  dst.Close();
  return Status::Ok();
}

// Writes the current contents of the database at `db_path` to `dest_path`
// (through `.partial`, fsync'ed, renamed): restore's copy of the previous db.
Status SnapshotToFile(const std::string& db_path, const std::string& dest_path) {
  std::string partial = dest_path + kPartial;
  auto src = Open(db_path, SQLITE_OPEN_READONLY, "database");
  if (!src.ok()) return src.status();
  auto dst = CopyIntoNewFile(src->get(), partial);
  Status s = dst.ok() ? MakeSingleFile(std::move(dst).value(), partial) : dst.status();
  src->Close();
  if (s.ok()) s = Fsync(partial, false);
  std::error_code ec;
  if (s.ok()) {
    fs::rename(partial, dest_path, ec);
    if (ec) s = Error("storage_error", fmt::format("rename to '{}': {}", dest_path, ec.message()));
  }
  if (!s.ok()) RemoveWithSideFiles(partial);
  return s;
}

struct CommandOutcome {
  std::optional<int> exit;
  std::string error;
};

// Runs `command` through /bin/sh -c in a process group of its own (so that a
// timeout stops everything it started), with DERMS_BACKUP_FILE=`file`.
CommandOutcome RunCommand(const std::string& command, const std::string& file, int timeout_s) {
  CommandOutcome out;
  std::vector<std::string> env;
  const std::string prefix = std::string(kEnvVar) + "=";
  for (char** e = environ; e && *e; ++e) {
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) != 0) env.emplace_back(*e);
  }
  env.push_back(prefix + file);
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", text = command;
  char* argv[] = {sh.data(), dash_c.data(), text.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  // The caller's blocked or ignored signals (SIGPIPE often is) are not the
  // command's business.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, sh.c_str(), &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    out.error = fmt::format("command could not be started: {}: {}", sh, ErrnoText(rc));
    return out;
  }

  auto deadline = SteadyClock::now() + std::chrono::seconds(timeout_s);
  bool terminated = false, killed = false;
  auto nap = std::chrono::milliseconds(2);
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, killed ? 0 : WNOHANG);
    if (r == pid) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      out.error = fmt::format("waiting for the command failed: {}", ErrnoText(errno));
      return out;
    }
    auto now = SteadyClock::now();
    if (now >= deadline && !terminated) {
      terminated = true;
      ::kill(-pid, SIGTERM);
      deadline = now + std::chrono::seconds(kCommandGraceS);
    } else if (now >= deadline && !killed) {
      killed = true;
      ::kill(-pid, SIGKILL);
      continue;
    }
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::milliseconds(50));
  }
  // What the shell started may outlive it; a timed-out command is stopped whole.
  if (terminated) ::kill(-pid, SIGKILL);
  if (WIFEXITED(status)) {
    out.exit = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.exit = 128 + WTERMSIG(status);
  }
  if (terminated) {
    out.error = fmt::format("command timed out after {} s and was stopped (exit {})", timeout_s,
                            out.exit.value_or(-1));
  } else if (WIFSIGNALED(status)) {
    out.error = fmt::format("command was killed by signal {} ({})", WTERMSIG(status),
                            strsignal(WTERMSIG(status)));
  } else if (out.exit != 0) {
    out.error = fmt::format("command exited with status {}", out.exit.value_or(-1));
  }
  return out;
}

// A backup's name, `derms-<stamp>[-N].db`, as a sort key (stamp, N).
std::optional<std::tuple<std::string, int64_t>> BackupKey(const std::string& name) {
  static const std::regex kName(R"(^derms-(\d{8}T\d{9}Z)(?:-(\d{1,9}))?\.db$)");
  std::smatch m;
  if (!std::regex_match(name, m, kName)) return std::nullopt;
  return std::make_tuple(m[1].str(), m[2].matched ? std::stoll(m[2].str()) : int64_t{0});
}

// Keeps `current` and the newest `keep - 1` other backups; removes older
// backups and every stale `.partial` (the directory lock is held, so no other
// backup is writing one).
void Rotate(const std::string& dir, const std::string& current, int keep, BackupReport* report) {
  auto note_failure = [&](const std::string& path, const std::error_code& ec) {
    if (!report->rotate_error.empty()) report->rotate_error += "; ";
    report->rotate_error += fmt::format("'{}' cannot be removed: {}", path, ec.message());
  };
  int kept = 1;
  for (const auto& path : ListBackups(dir)) {
    if (path == current) continue;
    if (kept < keep) {
      ++kept;
      continue;
    }
    std::error_code ec;
    if (fs::remove(path, ec)) {
      report->removed.push_back(path);
    } else if (ec) {
      note_failure(path, ec);
    }
  }
  std::error_code ec;
  std::vector<std::string> stale;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("derms-", 0) == 0 && name.find(std::string(".db") + kPartial) != name.npos) {
      stale.push_back(entry.path().string());
    }
  }
  std::sort(stale.begin(), stale.end());
  for (const auto& path : stale) {
    std::error_code remove_ec;
    if (fs::remove(path, remove_ec)) {
      report->removed.push_back(path);
    } else if (remove_ec) {
      note_failure(path, remove_ec);
    }
  }
}

}  // namespace

StatusOr<BackupReport> RunBackup(const BackupOptions& options, int64_t now_ms) {
  auto start = SteadyClock::now();
  if (options.db_path.empty()) return Error("invalid_argument", "backup: db_path is empty");
  if (options.dir.empty()) {
    return Error("invalid_argument", "backup: dir is empty; give the directory backups go to");
  }
  if (options.keep < 1) {
    return Error(
        "invalid_argument",
        fmt::format("backup: keep {} must be at least 1 (the backup just made)", options.keep));
  }
  if (options.command_timeout_s < 1) {
    return Error("invalid_argument", fmt::format("backup: command_timeout_s {} must be at least 1",
                                                 options.command_timeout_s));
  }
  std::error_code ec;
  if (!fs::is_regular_file(options.db_path, ec)) {
    return Error("not_found", fmt::format("backup: database '{}' does not exist or is not a file",
                                          options.db_path));
  }
  fs::create_directories(options.dir, ec);
  if (ec || !fs::is_directory(options.dir)) {
    return Error("storage_error", fmt::format("backup: directory '{}' cannot be created: {}",
                                              options.dir, ec ? ec.message() : "not a directory"));
  }
  std::string dir_lock_path = (fs::path(options.dir) / kDirLockName).string();
  Fd dir_lock(LockFile(dir_lock_path));
  if (dir_lock.get() < 0) {
    if (errno == EWOULDBLOCK) {
      return Error("in_use",
                   fmt::format("backup: another backup into directory '{}' is running (lock '{}' "
                               "is held); try again when it has finished",
                               options.dir, dir_lock_path));
    }
    return Error("storage_error", fmt::format("backup: lock file '{}' cannot be opened: {}",
                                              dir_lock_path, ErrnoText(errno)));
  }

  std::string final_path =
      UniquePath((fs::path(options.dir) / ("derms-" + Stamp(now_ms))).string(), ".db");
  std::string partial = final_path + kPartial;
  BackupReport report;
  Counts source_counts;
  {
    auto src = Open(options.db_path, SQLITE_OPEN_READONLY, "backup: database");
    if (!src.ok()) return src.status();
    std::string what = fmt::format("backup: database '{}'", options.db_path);
    Status s = Exec(src->get(), "BEGIN", what);
    if (!s.ok()) return s;
    // One read transaction from the first count to the end of the copy: the
    // counts and the copy are the same snapshot, and in WAL mode the writer
    // goes on appending meanwhile.
    auto snapshot_start = SteadyClock::now();
    auto counts = CountRows(src->get());
    if (!counts.ok()) return Error("storage_error", what + ": " + counts.status().message());
    source_counts = *counts;
    auto dst = CopyIntoNewFile(src->get(), partial);
    (void)Exec(src->get(), "COMMIT", what);
    report.snapshot_ms = MsSince(snapshot_start);
    src->Close();
    s = dst.ok() ? MakeSingleFile(std::move(dst).value(), partial) : dst.status();
    if (!s.ok()) {
      RemoveWithSideFiles(partial);
      return Error("storage_error", fmt::format("backup of '{}': {}; nothing was kept",
                                                options.db_path, s.message()));
    }
  }

  auto verified = VerifyBackup(partial);
  Status check = verified.ok() ? CompareCounts(source_counts, verified->row_counts,
                                               "the source at the snapshot")
                               : verified.status();
  if (!check.ok()) {
    RemoveWithSideFiles(partial);
    std::string reason = check.message();
    std::string own_prefix = fmt::format("backup '{}' failed verification: ", partial);
    if (reason.rfind(own_prefix, 0) == 0) reason = reason.substr(own_prefix.size());
    return Error("verify_failed",
                 fmt::format("backup copy '{}' failed verification: {}; the copy was removed",
                             partial, reason));
  }
  // Durable before it is visible under its final name; the rename durable
  // before the backup is reported (and older ones rotated away).
  Status synced = Fsync(partial, false);
  if (synced.ok()) {
    fs::rename(partial, final_path, ec);
    if (ec) {
      synced = Error("storage_error", fmt::format("rename of '{}' to '{}' failed: {}", partial,
                                                  final_path, ec.message()));
    }
  }
  if (!synced.ok()) {
    RemoveWithSideFiles(partial);
    return Error("storage_error", "backup: " + synced.message() + "; nothing was kept");
  }
  synced = Fsync(options.dir, true);
  if (!synced.ok()) {
    RemoveWithSideFiles(final_path);
    return Error("storage_error", "backup: " + synced.message() + "; nothing was kept");
  }
  report.path = final_path;
  report.bytes = static_cast<int64_t>(fs::file_size(final_path, ec));
  report.row_counts = std::move(source_counts);
  report.duration_ms = MsSince(start);

  Rotate(options.dir, final_path, options.keep, &report);

  if (!options.command.empty()) {
    auto outcome =
        RunCommand(options.command, fs::absolute(final_path, ec).lexically_normal().string(),
                   options.command_timeout_s);
    report.command_exit = outcome.exit;
    report.command_error = std::move(outcome.error);
  }
  return report;
}

StatusOr<VerifyReport> VerifyBackup(const std::string& path) {
  auto failed = [&](const std::string& reason) {
    return Error("verify_failed", fmt::format("backup '{}' failed verification: {}", path, reason));
  };
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (!fs::exists(st)) return Error("not_found", fmt::format("backup '{}' does not exist", path));
  if (!fs::is_regular_file(st)) return failed("not a regular file");
  VerifyReport report;
  report.path = path;
  report.bytes = static_cast<int64_t>(fs::file_size(path, ec));
  if (report.bytes == 0) return failed("the file is empty");
  auto db = Open(path, SQLITE_OPEN_READONLY, "backup");
  if (!db.ok()) return failed(db.status().message());
  auto counts = CheckDatabase(db->get());
  if (!counts.ok()) return failed(counts.status().message());
  report.row_counts = std::move(counts).value();
  return report;
}

std::vector<std::string> ListBackups(const std::string& dir) {
  std::vector<std::pair<std::tuple<std::string, int64_t>, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto key = BackupKey(entry.path().filename().string());
    std::error_code type_ec;
    if (key && entry.is_regular_file(type_ec)) found.emplace_back(*key, entry.path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a > b; });
  std::vector<std::string> paths;
  for (auto& [key, path] : found) paths.push_back(std::move(path));
  return paths;
}

StatusOr<DbLock> DbLock::Acquire(const std::string& db_path) {
  std::string lock_path = db_path + ".lock";
  int fd = LockFile(lock_path);
  if (fd >= 0) return DbLock(fd, lock_path);
  if (errno == EWOULDBLOCK) {
    return Error("in_use",
                 fmt::format("database '{}' is in use (lock '{}' is held by a running aggregator); "
                             "stop it first",
                             db_path, lock_path));
  }
  return Error("storage_error", fmt::format("database '{}': lock file '{}' cannot be opened: {}",
                                            db_path, lock_path, ErrnoText(errno)));
}

DbLock::DbLock(DbLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), lock_path_(std::move(other.lock_path_)) {}

DbLock& DbLock::operator=(DbLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    lock_path_ = std::move(other.lock_path_);
  }
  return *this;
}

DbLock::~DbLock() { Release(); }

void DbLock::Release() {
  // Closing the only descriptor of the open file releases the flock.
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

StatusOr<RestoreReport> Restore(const RestoreOptions& options) {
  auto start = SteadyClock::now();
  if (options.backup_path.empty())
    return Error("invalid_argument", "restore: backup_path is empty");
  if (options.db_path.empty()) return Error("invalid_argument", "restore: db_path is empty");
  std::error_code ec;
  if (Exists(options.backup_path) && Exists(options.db_path) &&
      fs::equivalent(options.backup_path, options.db_path, ec)) {
    return Error("invalid_argument", fmt::format("restore: backup '{}' is the database '{}' itself",
                                                 options.backup_path, options.db_path));
  }
  fs::path parent = fs::path(options.db_path).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec) {
      return Error("storage_error", fmt::format("restore: directory '{}' cannot be created: {}",
                                                parent.string(), ec.message()));
    }
  }
  auto lock = DbLock::Acquire(options.db_path);
  if (!lock.ok()) return lock.status();

  const std::string& db_path = options.db_path;
  auto verified = VerifyBackup(options.backup_path);
  if (!verified.ok()) {
    return Error("restore_refused", fmt::format("restore into '{}' refused: {}; '{}' was left "
                                                "untouched",
                                                db_path, verified.status().message(), db_path));
  }
  RestoreReport report;
  report.db_path = db_path;
  if (options.keep_previous && Exists(db_path)) {
    std::string previous = UniquePath(db_path + ".before-restore-" + Stamp(WallNowMs()), "");
    Status kept = SnapshotToFile(db_path, previous);
    if (!kept.ok()) {
      return Error("restore_refused",
                   fmt::format("restore into '{}' refused: the current database cannot be kept "
                               "aside at '{}': {}; nothing was changed (without keep_previous, "
                               "--no-keep-previous in dermsctl, it is replaced without a copy)",
                               db_path, previous, kept.message()));
    }
    report.previous_path = previous;
  }
  std::string after_copy =
      report.previous_path.empty()
          ? std::string()
          : fmt::format("; the previous database is at '{}'", report.previous_path);

  {
    auto src = Open(options.backup_path, SQLITE_OPEN_READONLY, "restore: backup");
    if (!src.ok()) return src.status();
    auto dst = Open(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "restore: database");
    if (!dst.ok()) return dst.status();
    std::string what = fmt::format("restore into '{}'", db_path);
    auto mode = QueryText(dst->get(), "PRAGMA journal_mode", what);
    auto src_page = QueryText(src->get(), "PRAGMA page_size", what);
    auto dst_page = QueryText(dst->get(), "PRAGMA page_size", what);
    if (!mode.ok() || !src_page.ok() || !dst_page.ok()) {
      Status s = !mode.ok()       ? mode.status()
                 : !src_page.ok() ? src_page.status()
                                  : dst_page.status();
      return Error("storage_error", s.message() + "; nothing was changed" + after_copy);
    }
    // The backup API cannot change the page size of a WAL database; leave WAL
    // for the copy (this checkpoints the old WAL into the file first).
    if (*mode == "wal" && *src_page != *dst_page) {
      auto now_mode = QueryText(dst->get(), "PRAGMA journal_mode = DELETE", what);
      if (!now_mode.ok() || *now_mode != "delete") {
        return Error(
            "storage_error",
            fmt::format("{}: the page size changes ({} to {}) and the database cannot "
                        "leave WAL mode for it: {}; nothing was changed{}",
                        what, *dst_page, *src_page,
                        now_mode.ok() ? *now_mode : now_mode.status().message(), after_copy));
      }
    }
    sqlite3_backup* backup = sqlite3_backup_init(dst->get(), "main", src->get(), "main");
    if (!backup) {
      return Error("storage_error", fmt::format("{}: copy cannot start: {}; nothing was changed{}",
                                                what, sqlite3_errmsg(dst->get()), after_copy));
    }
    int step = sqlite3_backup_step(backup, -1);
    int finish = sqlite3_backup_finish(backup);
    if (step != SQLITE_DONE || finish != SQLITE_OK) {
      // The copy is one write transaction of the destination: rolled back.
      return Error(
          "storage_error",
          fmt::format("{}: copy from '{}' failed: {} ({}); nothing was changed{}", what,
                      options.backup_path, sqlite3_errstr(step != SQLITE_DONE ? step : finish),
                      sqlite3_errmsg(dst->get()), after_copy));
    }
    src->Close();
    auto wal = QueryText(dst->get(), "PRAGMA journal_mode = WAL", what);
    if (!wal.ok() || *wal != "wal") {
      return Error(
          "storage_error",
          fmt::format("{}: the data was restored but journal_mode=WAL failed: {}{}", what,
                      wal.ok() ? "mode stayed " + *wal : wal.status().message(), after_copy));
    }
    // Fold the copy into the database file; an idle reader elsewhere may
    // prevent the truncation, which is harmless.
    (void)Exec(dst->get(), "PRAGMA wal_checkpoint(TRUNCATE)", what);
  }

  auto check = Open(db_path, SQLITE_OPEN_READWRITE, "restore: restored database");
  if (!check.ok()) return check.status();
  auto counts = CheckDatabase(check->get());
  Status same =
      counts.ok() ? CompareCounts(verified->row_counts, *counts, "the backup") : counts.status();
  if (!same.ok()) {
    return Error("verify_failed", fmt::format("restored database '{}' failed verification: {}{}",
                                              db_path, same.message(), after_copy));
  }
  report.row_counts = std::move(counts).value();
  report.duration_ms = MsSince(start);
  return report;
}

}  // namespace derms::storage
