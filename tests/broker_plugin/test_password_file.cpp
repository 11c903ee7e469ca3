#include <catch2/catch.hpp>

#include "broker_plugin/password_file.h"

using derms::broker::HashPasswordLine;
using derms::broker::PasswordFile;

// Written by `mosquitto_passwd -b pw bat-1 secret1` (Mosquitto 2.0.11).
constexpr const char* kMosquittoLine =
    "bat-1:$7$101$XY2gq3ZsEusW9Eij$KVgl78YtJNrSPZx/SHHPTNcVDWCve/DxvzDDnH028rylnAg1FcSmcCtLMCsFDIe"
    "hvqKlrksFWbGifX++jncT9g==";

TEST_CASE("a password file written by mosquitto_passwd verifies its passwords", "[passwords]") {
  auto file = PasswordFile::Parse(std::string("# comment\n\n") + kMosquittoLine + "\n", "pw");
  REQUIRE(file.ok());
  CHECK(file->size() == 1);
  CHECK(file->Has("bat-1"));
  CHECK(file->Verify("bat-1", "secret1"));
  CHECK_FALSE(file->Verify("bat-1", "secret2"));
  CHECK_FALSE(file->Verify("bat-1", ""));
  CHECK_FALSE(file->Verify("bat-2", "secret1"));
}

TEST_CASE("a line made here has a fresh salt and verifies", "[passwords]") {
  auto a = HashPasswordLine("agg", "pass word", 1000);
  auto b = HashPasswordLine("agg", "pass word", 1000);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
  CHECK(a->rfind("agg:$7$1000$", 0) == 0);
  auto file = PasswordFile::Parse(*a + "\n", "pw");
  REQUIRE(file.ok());
  CHECK(file->Verify("agg", "pass word"));
  CHECK_FALSE(file->Verify("agg", "pass  word"));
  CHECK_FALSE(HashPasswordLine("a:b", "x").ok());
}

TEST_CASE("a broken password file is refused naming the line and the rule", "[passwords]") {
  auto check = [](const std::string& text, const std::string& expected) {
    auto file = PasswordFile::Parse(text, "pw");
    REQUIRE_FALSE(file.ok());
    CHECK(file.status().code() == "bad_credentials");
    CHECK_THAT(file.status().message(), Catch::Contains(expected));
  };
  check("no-colon\n", "pw line 1: expected");
  check("u:$6$c2FsdA==$aGFzaA==\n", "$6$");
  check("u:$7$0$c2FsdGVkc2FsdA==$x\n", "iterations '0'");
  check("u:$7$101$!!!!$x\n", "salt is not base64");
  check("u:$7$101$c2FsdGVkc2FsdA==$aGFzaA==\n", "hash is not 64 bytes");
  check(std::string(kMosquittoLine) + "\n" + kMosquittoLine + "\n",
        "line 2: user 'bat-1' is listed twice");
  check("a+b:$7$1$x$y\n", "without + # /");
  CHECK_FALSE(PasswordFile::Load("/nonexistent/derms.passwd").ok());
}
