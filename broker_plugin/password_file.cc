#include "broker_plugin/password_file.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace derms::broker {
namespace {

constexpr size_t kSaltBytes = 12;  // mosquitto_passwd's
constexpr size_t kHashBytes = 64;  // SHA-512
constexpr int kMaxIterations = 10000000;

// Base64 (with padding) to bytes; false when it is not base64.
bool DecodeBase64(std::string_view in, std::vector<unsigned char>* out) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > 1024) return false;
  out->assign(in.size() / 4 * 3, 0);
  int n = EVP_DecodeBlock(out->data(), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return false;
  size_t pad = 0;
  if (in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out->resize(static_cast<size_t>(n) - pad);
  return true;
}

std::string EncodeBase64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool Pbkdf2(std::string_view password, const std::vector<unsigned char>& salt, int iterations,
            unsigned char* out) {
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                           static_cast<int>(salt.size()), iterations, EVP_sha512(),
                           static_cast<int>(kHashBytes), out) == 1;
}

std::vector<std::string_view> SplitDollar(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t d = s.find('$', start);
    if (d == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, d - start));
    start = d + 1;
  }
}

}  // namespace

StatusOr<PasswordFile> PasswordFile::Parse(std::string_view text, std::string_view source) {
  PasswordFile file;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    auto fail = [&](std::string_view rule) {
      return Status::Error("bad_credentials", fmt::format("{} line {}: {}", source, line_no, rule));
    };
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("expected 'username:$7$...'");
    std::string_view user = line.substr(0, colon);
    if (user.empty() || user.size() > 64 || user.find_first_of("+#/") != std::string_view::npos) {
      return fail(fmt::format("user name '{}' must be 1 to 64 characters without + # /",
                              user.substr(0, 80)));
    }
    auto parts = SplitDollar(line.substr(colon + 1));
    // "", "7", iterations, salt, hash
    if (parts.size() >= 2 && parts[0].empty() && parts[1] == "6") {
      return fail(
          fmt::format("user '{}': a $6$ hash (one round of SHA-512) is too fast; "
                      "make a $7$ one with mosquitto_passwd (Mosquitto 2.0)",
                      user));
    }
    if (parts.size() != 5 || !parts[0].empty() || parts[1] != "7") {
      return fail(fmt::format("user '{}': expected a $7$<iterations>$<salt>$<hash> hash", user));
    }
    Entry e;
    std::string iterations(parts[2]);
    char* end = nullptr;
    long it = std::strtol(iterations.c_str(), &end, 10);
    if (iterations.empty() || *end != '\0' || it < 1 || it > kMaxIterations) {
      return fail(fmt::format("user '{}': iterations '{}' must be in [1, {}]", user,
                              iterations.substr(0, 20), kMaxIterations));
    }
    e.iterations = static_cast<int>(it);
    file.dummy_iterations_ = std::max(file.dummy_iterations_, e.iterations);
    if (!DecodeBase64(parts[3], &e.salt) || e.salt.empty()) {
      return fail(fmt::format("user '{}': the salt is not base64", user));
    }
    if (!DecodeBase64(parts[4], &e.hash) || e.hash.size() != kHashBytes) {
      return fail(fmt::format("user '{}': the hash is not {} bytes of base64", user, kHashBytes));
    }
    if (!file.users_.emplace(std::string(user), std::move(e)).second) {
      return fail(fmt::format("user '{}' is listed twice", user));
    }
  }
  return file;
}

StatusOr<PasswordFile> PasswordFile::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::Error("bad_credentials", fmt::format("password file '{}': cannot open", path));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), fmt::format("password file '{}'", path));
}

bool PasswordFile::Verify(std::string_view username, std::string_view password) const {
  auto it = users_.find(std::string(username));
  unsigned char got[kHashBytes];
  if (it == users_.end()) {
    // The same work as for a known user, so that timing does not tell which
    // user names exist.
    static const std::vector<unsigned char> kSalt(kSaltBytes, 0x5a);
    (void)Pbkdf2(password, kSalt, dummy_iterations_, got);
    return false;
  }
  const Entry& e = it->second;
  if (!Pbkdf2(password, e.salt, e.iterations, got)) return false;
  return CRYPTO_memcmp(got, e.hash.data(), kHashBytes) == 0;
}

StatusOr<std::string> HashPasswordLine(std::string_view username, std::string_view password,
                                       int iterations) {
  if (username.empty() || username.find_first_of(":+#/") != std::string_view::npos) {
    return Status::Error(
        "bad_credentials",
        fmt::format("user name '{}' must not be empty nor hold : + # /", username.substr(0, 80)));
  }
  if (iterations < 1 || iterations > kMaxIterations) {
    return Status::Error("bad_credentials",
                         fmt::format("iterations {} outside [1, {}]", iterations, kMaxIterations));
  }
  std::vector<unsigned char> salt(kSaltBytes);
  unsigned char hash[kHashBytes];
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1 ||
      !Pbkdf2(password, salt, iterations, hash)) {
    return Status::Error("bad_credentials", "OpenSSL could not make a salt or a hash");
  }
  return fmt::format("{}:$7${}${}${}", username, iterations, EncodeBase64(salt.data(), salt.size()),
                     EncodeBase64(hash, kHashBytes));
}

}  // namespace derms::broker
