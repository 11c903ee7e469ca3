#include "cloud_aggregator/storage/journal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace derms::storage {
namespace {

// A file is closed (and can be dropped) after this many bytes or this long.
constexpr uint64_t kRollBytes = 8 << 20;
constexpr int64_t kRollMs = 1000;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint32_t Fnv1a(const char* data, size_t size) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < size; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 16777619u;
  }
  return h;
}

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
bool Take(const std::string& in, size_t* pos, T* v) {
  if (in.size() - *pos < sizeof *v) return false;
  std::memcpy(v, in.data() + *pos, sizeof *v);
  *pos += sizeof *v;
  return true;
}

// Reads the entries of one file; stops at the first torn or damaged one.
size_t ReadFile(const std::string& path, std::vector<JournalEntry>* out) {
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0, count = 0;
  while (pos < data.size()) {
    uint32_t length = 0, sum = 0;
    size_t start = pos;
    if (!Take(data, &pos, &length) || !Take(data, &pos, &sum) || data.size() - pos < length ||
        Fnv1a(data.data() + pos, length) != sum || length < 10) {
      spdlog::warn(
          "journal '{}': entry at byte {} is torn or damaged; the rest of the file is "
          "skipped ({} bytes)",
          path, start, data.size() - start);
      break;
    }
    std::string body = data.substr(pos, length);
    pos += length;
    size_t b = 0;
    JournalEntry e;
    uint16_t topic_length = 0;
    Take(body, &b, &e.received_ms);
    Take(body, &b, &topic_length);
    if (body.size() - b < topic_length) break;
    e.topic = body.substr(b, topic_length);
    e.payload = body.substr(b + topic_length);
    out->push_back(std::move(e));
    ++count;
  }
  return count;
}

}  // namespace

StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& dir,
                                                 std::vector<JournalEntry>* replay) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::Error("storage_error",
                         fmt::format("journal directory '{}': {}", dir, ec.message()));
  }
  auto journal = std::unique_ptr<Journal>(new Journal(dir));
  std::vector<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = f.path().filename().string();
    if (name.rfind("journal-", 0) == 0 && f.path().extension() == ".log") {
      files.push_back(f.path().string());
    }
  }
  // Names sort by the time their run opened them, then their number.
  std::sort(files.begin(), files.end());
  for (const auto& path : files) ReadFile(path, replay);
  journal->replayed_ = files;
  journal->run_prefix_ = fmt::format("{}/journal-{:015}", dir, WallMs());
  std::lock_guard<std::mutex> lock(journal->mutex_);
  if (!journal->RollLocked()) {
    return Status::Error("storage_error",
                         fmt::format("journal '{}': {}", journal->current_.path, strerror(errno)));
  }
  return journal;
}

Journal::~Journal() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (fd_ >= 0) ::close(fd_);
}

bool Journal::RollLocked() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    if (current_.last_seq > 0) {
      closed_.push_back(current_);
    } else {
      std::filesystem::remove(current_.path);  // nothing in it
    }
  }
  torn_ = false;
  current_ = Segment{fmt::format("{}-{:06}.log", run_prefix_, ++files_made_), 0};
  current_bytes_ = 0;
  current_opened_ms_ = WallMs();
  fd_ = ::open(current_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  return fd_ >= 0;
}

uint64_t Journal::Append(const std::string& topic, const std::string& payload,
                         int64_t received_ms) {
  std::string entry;
  entry.reserve(18 + topic.size() + payload.size());
  uint32_t length = static_cast<uint32_t>(8 + 2 + topic.size() + payload.size());
  Put(&entry, length);
  Put(&entry, uint32_t{0});
  Put(&entry, received_ms);
  Put(&entry, static_cast<uint16_t>(topic.size()));
  entry += topic;
  entry += payload;
  uint32_t sum = Fnv1a(entry.data() + 8, length);
  std::memcpy(&entry[4], &sum, sizeof sum);

  std::lock_guard<std::mutex> lock(mutex_);
  if (current_bytes_ >= kRollBytes ||
      (current_.last_seq > 0 && WallMs() - current_opened_ms_ >= kRollMs) || fd_ < 0 || torn_) {
    if (!RollLocked()) return FailedLocked(strerror(errno));
  }
  // One write() per entry: it reaches the page cache whole or not at all
  // as far as a killed process is concerned.
  ssize_t n = ::write(fd_, entry.data(), entry.size());
  if (n != static_cast<ssize_t>(entry.size())) {
    std::string why = n < 0 ? strerror(errno) : "short write";
    // Replay stops at the first torn entry: the torn tail is cut, or, if
    // it cannot be, later entries go to a new file.
    if (n > 0 && ::ftruncate(fd_, static_cast<off_t>(current_bytes_)) != 0) torn_ = true;
    return FailedLocked("write failed: " + why);
  }
  if (failing_) {
    spdlog::warn(
        "journal: writes recovered after {} failed; those messages were kept in memory only",
        failed_in_row_);
    failing_ = false;
    failed_in_row_ = 0;
  }
  current_bytes_ += entry.size();
  current_.last_seq = next_seq_;
  ++appended_;
  return next_seq_++;
}

uint64_t Journal::FailedLocked(const std::string& why) {
  ++write_errors_;
  ++failed_in_row_;
  // Once, not per message: the disk that refuses the journal is likely the
  // one the log is on.
  if (!failing_) {
    spdlog::error(
        "journal '{}': {}; messages go on unjournaled (held in memory until the store commits "
        "them) until a write succeeds",
        current_.path, why);
  }
  failing_ = true;
  return 0;
}

void Journal::Release(uint64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  // The file being written to is closed first when all of it is safe.
  if (current_.last_seq > 0 && current_.last_seq <= seq) RollLocked();
  while (!closed_.empty() && closed_.front().last_seq <= seq) {
    std::error_code ec;
    std::filesystem::remove(closed_.front().path, ec);
    closed_.pop_front();
  }
}

void Journal::ReleaseReplayed() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& path : replayed_) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  replayed_.clear();
}

size_t Journal::files() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_.size() + replayed_.size() + (fd_ >= 0 ? 1 : 0);
}

}  // namespace derms::storage
