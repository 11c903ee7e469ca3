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

// How to configure the broker beyond the defaults.
struct BrokerOptions {
  // Saves sessions to disk every second, so they survive Kill and Restart.
  bool persistent = false;
  bool allow_anonymous = true;
  // Lines added to the configuration: a plugin and its plugin_opt_* lines.
  std::string extra_config;
  // When not empty: a second listener on another free loopback port
  // (tls_port()) configured by these lines (cafile, certfile, keyfile, ...).
  std::string tls_listener_config;
};

class MosquittoBroker {
 public:
  // Starts mosquitto and waits until it accepts connections. `persistent`
  // saves sessions to disk every second, so they survive Kill and Restart.
  static StatusOr<std::unique_ptr<MosquittoBroker>> Start(bool persistent = false);
  static StatusOr<std::unique_ptr<MosquittoBroker>> Start(const BrokerOptions& options);
  ~MosquittoBroker();

  std::string uri() const;
  int port() const { return port_; }
  // The TLS listener's port (BrokerOptions::tls_listener_config), or -1.
  int tls_port() const { return tls_port_; }
  // Its own directory: the configuration and mosquitto.log.
  const std::string& dir() const { return dir_; }
  // For a persistent broker: waits until it has saved its state after this
  // call, so everything done before it survives Kill. False on timeout.
  bool WaitForSave();
  // Kills the broker abruptly (SIGKILL), as a crash or a network loss would.
  void Kill();
  // Starts it again on the same port (after Kill).
  Status Restart();

 private:
  MosquittoBroker(std::string dir, int port, BrokerOptions options)
      : dir_(std::move(dir)), port_(port), options_(std::move(options)) {}
  Status Launch();

  std::string dir_;
  int port_;
  int tls_port_ = -1;
  BrokerOptions options_;
  pid_t pid_ = -1;
};

}  // namespace derms::testing

#endif  // DERMS_TESTS_SUPPORT_MOSQUITTO_BROKER_H_
