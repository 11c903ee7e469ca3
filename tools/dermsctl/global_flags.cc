#include "tools/dermsctl/global_flags.h"

#include <string>

namespace derms::dermsctl {

void GlobalFlags::AddTo(CLI::App* app) {
  app->add_option("--broker", broker.uri, "MQTT broker URI (default tcp://127.0.0.1:1883)");
  app->add_option("--username", broker.username, "MQTT user name");
  app->add_option("--password", broker.password, "MQTT password");
  app->add_option("--ca-file", broker.ca_file, "TLS: CA certificate of the broker (ssl:// URIs)");
  app->add_option("--cert-file", broker.cert_file, "TLS: client certificate");
  app->add_option("--key-file", broker.key_file, "TLS: client private key");
  clock.AddTo(app);
}

TimeParser GlobalFlags::TimeParserFromNow() const {
  return [this](const std::string& flag, const std::string& text) {
    return ParseTime(flag, text, NowMs());
  };
}

}  // namespace derms::dermsctl
