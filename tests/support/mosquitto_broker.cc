#include "tests/support/mosquitto_broker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace derms::testing {
namespace {

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

bool Accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

std::string CurrentUser() {
  const passwd* pw = ::getpwuid(::getuid());
  return pw ? pw->pw_name : "root";
}

std::string MosquittoBinary() {
  for (const char* p : {"/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "mosquitto";
}

}  // namespace

StatusOr<std::unique_ptr<MosquittoBroker>> MosquittoBroker::Start(bool persistent) {
  BrokerOptions options;
  options.persistent = persistent;
  return Start(options);
}

StatusOr<std::unique_ptr<MosquittoBroker>> MosquittoBroker::Start(const BrokerOptions& options) {
  char tmpl[] = "/tmp/derms-broker-XXXXXX";
  if (!::mkdtemp(tmpl)) return Status::Error("test_broker", "cannot create a temporary directory");
  Status last = Status::Ok();
  for (int attempt = 0; attempt < 5; ++attempt) {
    int port = FreeLoopbackPort();
    auto broker = std::unique_ptr<MosquittoBroker>(new MosquittoBroker(tmpl, port, options));
    if (!options.tls_listener_config.empty()) {
      do {
        broker->tls_port_ = FreeLoopbackPort();
      } while (broker->tls_port_ == port);
    }
    last = broker->Launch();
    if (last.ok()) return broker;
  }
  return last;
}

Status MosquittoBroker::Launch() {
  std::string conf = dir_ + "/mosquitto.conf";
  {
    std::ofstream out(conf);
    out << "listener " << port_
        << " 127.0.0.1\n"
        // Run as ourselves: as root, mosquitto would switch to its own user
        // and could not write into our private directory.
        << "user " << CurrentUser() << "\n"
        << "allow_anonymous " << (options_.allow_anonymous ? "true" : "false") << "\n"
        << "persistence " << (options_.persistent ? "true" : "false") << "\n"
        << "persistence_location " << dir_ << "/\n"
        << "autosave_interval 1\n"
        << "max_queued_messages 100000\n"
        << "log_dest file " << dir_ << "/mosquitto.log\n"
        << options_.extra_config << "\n";
    if (tls_port_ > 0) {
      out << "listener " << tls_port_ << " 127.0.0.1\n" << options_.tls_listener_config << "\n";
    }
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    // Its own chatter goes beside its log, not into the test output.
    int fd = ::open((dir_ + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    ::execlp(MosquittoBinary().c_str(), "mosquitto", "-c", conf.c_str(), nullptr);
    std::_Exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Accepts(port_) && (tls_port_ < 0 || Accepts(tls_port_))) return Status::Ok();
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Error("test_broker",
                           fmt::format("mosquitto exited at start on port {} (see {})", port_,
                                       dir_ + "/mosquitto.log"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return Status::Error("test_broker", fmt::format("mosquitto not accepting on port {}", port_));
}

std::string MosquittoBroker::uri() const { return fmt::format("tcp://127.0.0.1:{}", port_); }

bool MosquittoBroker::WaitForSave() {
  namespace fs = std::filesystem;
  const fs::path db = dir_ + "/mosquitto.db";
  std::error_code ec;
  // A save that starts after this moment includes what happened before it.
  // Filesystem timestamps can be coarse, so require a strictly later one
  // after a short pause.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto before = fs::exists(db, ec) ? fs::last_write_time(db, ec) : fs::file_time_type::min();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (fs::exists(db, ec) && fs::last_write_time(db, ec) > before) {
      // Saved once after `before`: but that save may have begun before it.
      // A second save surely began after.
      auto first = fs::last_write_time(db, ec);
      while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (fs::last_write_time(db, ec) > first) return true;
      }
      return false;
    }
  }
  return false;
}

void MosquittoBroker::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

Status MosquittoBroker::Restart() {
  Kill();
  return Launch();
}

MosquittoBroker::~MosquittoBroker() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace derms::testing
