#include "edge_agent/agent/state_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace derms::edge {

StatusOr<StateStore> StateStore::Open(const std::string& dir, const std::string& der_id) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::Error("state_error",
                         fmt::format("state_dir '{}' cannot be created: {}", dir, ec.message()));
  }
  std::string path = dir + "/" + der_id + ".state";
  uint64_t bd_seq = 0;
  uint64_t reserved = 1;
  std::ifstream in(path);
  if (in) {
    std::string key_bd, key_seq;
    if (!(in >> key_bd >> bd_seq >> key_seq >> reserved) || key_bd != "bd_seq" ||
        key_seq != "seq_reserved" || reserved == 0) {
      return Status::Error("state_error",
                           fmt::format("state file '{}' is not 'bd_seq N seq_reserved M'", path));
    }
  }
  StateStore store(path, bd_seq, reserved);
  // Everything below `reserved` may have been used by an earlier run.
  store.next_seq_ = reserved;
  Status s = store.Save();
  if (!s.ok()) return s;
  return store;
}

StateStore::StateStore(std::string path, uint64_t bd_seq, uint64_t seq_reserved)
    : path_(std::move(path)),
      bd_seq_(bd_seq),
      next_seq_(seq_reserved),
      seq_reserved_(seq_reserved) {}

Status StateStore::Save() const {
  std::string tmp = path_ + ".tmp";
  std::string text = fmt::format("bd_seq {} seq_reserved {}\n", bd_seq_, seq_reserved_);
  // On disk before it is used (fsync of the file, then of the directory after
  // the rename): after a power cut, seq must not go back below numbers already
  // sent, or the cloud would take new samples for ones it has stored.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  bool written = fd >= 0 &&
                 ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                 ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!written) {
    return Status::Error("state_error", fmt::format("state file '{}' cannot be written", tmp));
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    return Status::Error("state_error", fmt::format("state file '{}' cannot be replaced", path_));
  }
  std::string dir = std::filesystem::path(path_).parent_path().string();
  int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
}

StatusOr<uint64_t> StateStore::NextBdSeq() {
  ++bd_seq_;
  Status s = Save();
  if (!s.ok()) return s;
  return bd_seq_;
}

StatusOr<uint64_t> StateStore::NextSeq() {
  if (next_seq_ >= seq_reserved_) {
    // Hand out nothing above what the file promises: after a failed save a
    // restart would otherwise reuse the numbers handed out since.
    uint64_t previous = seq_reserved_;
    seq_reserved_ = next_seq_ + kSeqBlock;
    Status s = Save();
    if (!s.ok()) {
      seq_reserved_ = previous;
      return s;
    }
  }
  return next_seq_++;
}

}  // namespace derms::edge
