#include "edge_agent/agent/state_store.h"

#include <fmt/format.h>

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
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "bd_seq " << bd_seq_ << " seq_reserved " << seq_reserved_ << "\n";
    if (!out.flush()) {
      return Status::Error("state_error", fmt::format("state file '{}' cannot be written", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    return Status::Error("state_error", fmt::format("state file '{}' cannot be replaced", path_));
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
