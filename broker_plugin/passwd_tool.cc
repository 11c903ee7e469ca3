// derms-broker-passwd: the plugin's password file for many users at once.
// Reads one user name per line on stdin; for each makes a random password
// (written as "user password" to --passwords FILE, mode 600) and writes the
// user's "$7$" line (mosquitto_passwd's format, PBKDF2-SHA512, random salt)
// to stdout. The demo uses it for thousands of DERs, where one
// mosquitto_passwd or openssl process per user would take minutes.
//
//   derms-fleet --count 100 --list-ids | derms-broker-passwd --passwords pw.txt > passwd
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "broker_plugin/password_file.h"
#include "common/topics.h"

namespace {

int Usage(const char* why) {
  std::fprintf(stderr,
               "derms-broker-passwd: %s\n"
               "usage: derms-broker-passwd --passwords FILE [--iterations N] < users > passwd\n",
               why);
  return 2;
}

// 24 characters of URL-safe base64 from 18 random bytes.
std::string RandomPassword() {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return "";
  std::string out;
  for (unsigned char b : bytes) out += kAlphabet[b % 64];
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string passwords_path;
  int iterations = 10000;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--passwords" || arg == "--iterations") && i + 1 >= argc) {
      return Usage((arg + " needs a value").c_str());
    }
    if (arg == "--passwords") {
      passwords_path = argv[++i];
    } else if (arg == "--iterations") {
      char* end = nullptr;
      long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 1 || v > 10000000) {
        return Usage("--iterations must be a whole number from 1 to 10000000");
      }
      iterations = static_cast<int>(v);
    } else {
      return Usage(("unknown argument '" + arg + "'").c_str());
    }
  }
  if (passwords_path.empty()) return Usage("--passwords FILE is required");
  int fd = ::open(passwords_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return Usage(("cannot write '" + passwords_path + "'").c_str());
  FILE* passwords = ::fdopen(fd, "w");
  std::string user;
  int line = 0;
  while (std::getline(std::cin, user)) {
    ++line;
    if (user.empty()) continue;
    if (!derms::topics::IsValidId(user)) {
      std::fprintf(stderr,
                   "derms-broker-passwd: stdin line %d: user '%s' does not match "
                   "[A-Za-z0-9_-]{1,64}\n",
                   line, user.substr(0, 80).c_str());
      return 1;
    }
    std::string password = RandomPassword();
    auto hashed = derms::broker::HashPasswordLine(user, password, iterations);
    if (password.empty() || !hashed.ok()) {
      std::fprintf(stderr, "derms-broker-passwd: %s\n", hashed.status().message().c_str());
      return 1;
    }
    std::fprintf(passwords, "%s %s\n", user.c_str(), password.c_str());
    std::cout << *hashed << "\n";
  }
  return std::fclose(passwords) == 0 && std::cout.flush() ? 0 : 1;
}
