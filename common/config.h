// Reading TOML configuration files with errors that name the file, the key
// and the rule. Programs read a file into their options struct with these,
// then let command-line flags override it.
#ifndef DERMS_COMMON_CONFIG_H_
#define DERMS_COMMON_CONFIG_H_

#include <toml++/toml.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace derms::config {

// Parses `path`. Errors: "config_error" with the file, line and column.
StatusOr<toml::table> ParseFile(const std::string& path);

// Each Get reads the dotted `key` into `out` when present (leaving `out` as it
// is when absent) and fails with "config_error" on a value of the wrong type.
Status Get(const toml::table& t, std::string_view source, std::string_view key, double* out);
Status Get(const toml::table& t, std::string_view source, std::string_view key, int64_t* out);
Status Get(const toml::table& t, std::string_view source, std::string_view key, bool* out);
Status Get(const toml::table& t, std::string_view source, std::string_view key, std::string* out);
Status Get(const toml::table& t, std::string_view source, std::string_view key,
           std::vector<std::string>* out);

// Fails on the first key (dotted path of a value) not in `known`, so a typo
// in a config file is reported instead of silently ignored. An entry ending
// in ".*" accepts every key below it (tables keyed by id).
Status CheckKnownKeys(const toml::table& t, std::string_view source,
                      const std::set<std::string>& known);

}  // namespace derms::config

#endif  // DERMS_COMMON_CONFIG_H_
