// Credentials in mosquitto_passwd's format: one "username:$7$<iterations>$
// <base64 salt>$<base64 hash>" line per user, the hash PBKDF2-HMAC-SHA512
// (OpenSSL) of the password over the salt. Files made by `mosquitto_passwd`
// (Mosquitto 2.0) load as they are; lines with the older single-round "$6$"
// hash are refused, being fast to brute-force.
#ifndef DERMS_BROKER_PLUGIN_PASSWORD_FILE_H_
#define DERMS_BROKER_PLUGIN_PASSWORD_FILE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace derms::broker {

class PasswordFile {
 public:
  PasswordFile() = default;
  // Errors ("bad_credentials") name `source`, the line and the rule.
  static StatusOr<PasswordFile> Parse(std::string_view text, std::string_view source);
  static StatusOr<PasswordFile> Load(const std::string& path);

  // True when `username` is listed and `password` hashes to its hash. Takes
  // as long for an unknown user as for a known one. Any thread (const).
  bool Verify(std::string_view username, std::string_view password) const;
  bool Has(std::string_view username) const { return users_.count(std::string(username)) > 0; }
  size_t size() const { return users_.size(); }

 private:
  struct Entry {
    int iterations = 0;
    std::vector<unsigned char> salt;
    std::vector<unsigned char> hash;
  };
  std::unordered_map<std::string, Entry> users_;
  // PBKDF2 rounds spent on an unknown user: the most any user's hash takes.
  int dummy_iterations_ = 101;
};

// One line of the file for `username` (no newline), with a fresh random
// 12-byte salt: what `mosquitto_passwd` would write with `iterations`.
StatusOr<std::string> HashPasswordLine(std::string_view username, std::string_view password,
                                       int iterations = 10000);

}  // namespace derms::broker

#endif  // DERMS_BROKER_PLUGIN_PASSWORD_FILE_H_
