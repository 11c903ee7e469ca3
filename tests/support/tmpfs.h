// A small tmpfs for tests that need a disk to fill up: mounted on a
// directory, filled to ENOSPC with a filler file on demand, and unmounted
// however the test ends. Mounting needs CAP_SYS_ADMIN (root); where it is
// not permitted, mounted() is false and why() says so, and the test skips.
#ifndef DERMS_TESTS_SUPPORT_TMPFS_H_
#define DERMS_TESTS_SUPPORT_TMPFS_H_

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace derms::testing {

class TmpfsMount {
 public:
  TmpfsMount(std::string dir, size_t bytes) : dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    std::string options = fmt::format("size={}", bytes);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      why_ = fmt::format("mount -t tmpfs -o {} on '{}': {}", options, dir_, std::strerror(errno));
    }
  }
  // Whatever still has files open on it (a test that failed early), the
  // mount goes: lazily if it is busy.
  ~TmpfsMount() {
    if (!mounted_) return;
    RemoveFiller();
    if (::umount2(dir_.c_str(), 0) != 0) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& dir() const { return dir_; }

  // Writes a filler file until the file system refuses (ENOSPC); returns
  // the bytes it took.
  size_t Fill() {
    int fd = ::open(filler().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return 0;
    std::vector<char> page(4096, 'x');
    size_t total = 0;
    while (true) {
      ssize_t n = ::write(fd, page.data(), page.size());
      if (n <= 0) break;
      total += static_cast<size_t>(n);
    }
    ::close(fd);
    return total;
  }
  void RemoveFiller() {
    std::error_code ec;
    std::filesystem::remove(filler(), ec);
  }

 private:
  std::string filler() const { return dir_ + "/filler"; }

  std::string dir_;
  bool mounted_ = false;
  std::string why_;
};

}  // namespace derms::testing

#endif  // DERMS_TESTS_SUPPORT_TMPFS_H_
