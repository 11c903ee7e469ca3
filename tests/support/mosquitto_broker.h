// A real Mosquitto for integration tests: started on a free loopback port
// with its own config in a temporary directory, stopped (and the directory
// removed) however the test ends.
#ifndef DERMS_TESTS_SUPPORT_MOSQUITTO_BROKER_H_
#define DERMS_TESTS_SUPPORT_MOSQUITTO_BROKER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace derms::testing {

class MosquittoBroker {
 public:
  // Starts mosquitto and waits until it accepts connections. `persistent`
  // saves sessions to disk every second, so they survive Kill and Restart.
  static StatusOr<std::unique_ptr<MosquittoBroker>> Start(bool persistent = false);
  ~MosquittoBroker();

  std::string uri() const;
  int port() const { return port_; }
  // For a persistent broker: waits until it has saved its state after this
  // call, so everything done before it survives Kill. False on timeout.
  bool WaitForSave();
  // Kills the broker abruptly (SIGKILL), as a crash or a network loss would.
  void Kill();
  // Starts it again on the same port (after Kill).
  Status Restart();

 private:
  MosquittoBroker(std::string dir, int port, bool persistent)
      : dir_(std::move(dir)), port_(port), persistent_(persistent) {}
  Status Launch();

  std::string dir_;
  int port_;
  bool persistent_;
  pid_t pid_ = -1;
};

}  // namespace derms::testing

#endif  // DERMS_TESTS_SUPPORT_MOSQUITTO_BROKER_H_
