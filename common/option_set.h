// A component's configuration keys, each declared once: its place in the
// TOML file, the field it fills, its rule and its documentation. From that
// one declaration come reading the file (type errors name the file and the
// key), the list of known keys (a typo is an error), validation after flags
// override the file (errors name the key and the rule), and the documented
// key list that a test holds the example file to, and, for keys given a
// command-line flag, the flag (CliOverrides::AddFlags) with the key's
// documentation as its help.
//
//   config::OptionSet set("dispatch");
//   set.Int("control_duration_s", &o.control_duration_s, 1, 86400,
//           "how long each dispatched setpoint lasts, seconds")
//      .Cli("--control-duration-s");
#ifndef DERMS_COMMON_OPTION_SET_H_
#define DERMS_COMMON_OPTION_SET_H_

#include <toml++/toml.h>

#include <variant>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace derms::config {

class OptionSet {
 public:
  // `section`: the table the keys live in ("" for the top level).
  explicit OptionSet(std::string section = "") : section_(std::move(section)) {}

  // Whole numbers in [min, max].
  OptionSet& Int(std::string key, int64_t* field, int64_t min, int64_t max, std::string doc);
  // Finite numbers in [min, max].
  OptionSet& Real(std::string key, double* field, double min, double max, std::string doc);
  OptionSet& Flag(std::string key, bool* field, std::string doc);
  // Text; `id` requires the contract's identifier rule ([A-Za-z0-9_-]{1,64})
  // when not empty, `required` a non-empty value.
  enum class TextRule { kAny, kRequired, kId };
  OptionSet& Text(std::string key, std::string* field, TextRule rule, std::string doc);
  // A table of strings keyed by identifiers ("nodes.sub-1 = \"node-a\"").
  OptionSet& IdMap(std::string key, std::map<std::string, std::string>* field, std::string doc);
  // A key read by another reader (an array of tables such as [[vder]]):
  // known and documented here, read there. A trailing ".*" accepts any key
  // below it.
  OptionSet& Elsewhere(std::string key, std::string doc);
  // The option declared just before may also be set by command-line flag
  // `flag` ("--control-duration-s"); a flag overrides the file.
  OptionSet& Cli(std::string flag);

  // The field an option fills (monostate: a table, or read elsewhere).
  using Field = std::variant<std::monostate, int64_t*, double*, bool*, std::string*>;
  struct CliFlag {
    std::string flag;
    std::string key;  // full dotted key
    std::string doc;
    Field field;
  };
  // The options given a flag, in declaration order.
  std::vector<CliFlag> CliFlags() const;

  // Reads the keys present in `root` into their fields; absent ones keep
  // what they hold. Does not check rules (flags may still override).
  [[nodiscard]] Status Read(const toml::table& root, std::string_view source) const;
  // Every field against its rule: "invalid_value" naming the key.
  [[nodiscard]] Status Validate() const;
  // Full dotted keys ("dispatch.max_rounds"), for CheckKnownKeys.
  void AddKnownKeys(std::set<std::string>* out) const;
  // (full key, documentation) in declaration order.
  std::vector<std::pair<std::string, std::string>> Docs() const;

 private:
  struct Option {
    std::string key;  // within the section
    std::string doc;
    Field field;
    std::string flag;  // empty: the file only
    std::function<Status(const toml::table&, std::string_view source, const std::string& full)>
        read;
    std::function<Status(const std::string& full)> validate;
  };
  std::string Full(const std::string& key) const;
  OptionSet& Push(Option o);

  std::string section_;
  std::vector<Option> options_;
};

}  // namespace derms::config

#endif  // DERMS_COMMON_OPTION_SET_H_
