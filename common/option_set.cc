#include "common/option_set.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "common/config.h"
#include "common/topics.h"

namespace derms::config {
namespace {

Status Invalid(std::string message) { return Status::Error("invalid_value", std::move(message)); }

}  // namespace

std::string OptionSet::Full(const std::string& key) const {
  return section_.empty() ? key : section_ + "." + key;
}

OptionSet& OptionSet::Push(Option o) {
  options_.push_back(std::move(o));
  return *this;
}

OptionSet& OptionSet::Int(std::string key, int64_t* field, int64_t min, int64_t max,
                          std::string doc) {
  return Push(Option{std::move(key), std::move(doc), field, {},
                     [field](const toml::table& t, std::string_view source,
                             const std::string& full) { return Get(t, source, full, field); },
                     [field, min, max](const std::string& full) {
                       if (*field < min || *field > max) {
                         return Invalid(
                             fmt::format("{} {} outside [{}, {}]", full, *field, min, max));
                       }
                       return Status::Ok();
                     }});
}

OptionSet& OptionSet::Real(std::string key, double* field, double min, double max,
                           std::string doc) {
  return Push(Option{std::move(key), std::move(doc), field, {},
                     [field](const toml::table& t, std::string_view source,
                             const std::string& full) { return Get(t, source, full, field); },
                     [field, min, max](const std::string& full) {
                       if (!std::isfinite(*field) || *field < min || *field > max) {
                         return Invalid(
                             fmt::format("{} {} outside [{}, {}]", full, *field, min, max));
                       }
                       return Status::Ok();
                     }});
}

OptionSet& OptionSet::Flag(std::string key, bool* field, std::string doc) {
  return Push(Option{std::move(key), std::move(doc), field, {},
                     [field](const toml::table& t, std::string_view source,
                             const std::string& full) { return Get(t, source, full, field); },
                     [](const std::string&) { return Status::Ok(); }});
}

OptionSet& OptionSet::Text(std::string key, std::string* field, TextRule rule, std::string doc) {
  return Push(Option{std::move(key), std::move(doc), field, {},
                     [field](const toml::table& t, std::string_view source,
                             const std::string& full) { return Get(t, source, full, field); },
                     [field, rule](const std::string& full) {
                       if (rule == TextRule::kRequired && field->empty()) {
                         return Invalid(fmt::format("{} must not be empty", full));
                       }
                       if (rule == TextRule::kId && !field->empty() && !topics::IsValidId(*field)) {
                         return Invalid(
                             fmt::format("{} '{}' must match [A-Za-z0-9_-]{{1,64}}", full, *field));
                       }
                       return Status::Ok();
                     }});
}

OptionSet& OptionSet::IdMap(std::string key, std::map<std::string, std::string>* field,
                            std::string doc) {
  return Push(Option{
      key + ".*", std::move(doc), {}, {},
      [field, key](const toml::table& t, std::string_view source, const std::string& full) {
        std::string path = full.substr(0, full.size() - 2);  // without ".*"
        const toml::table* table = t.at_path(path).as_table();
        if (table == nullptr) {
          if (t.at_path(path)) {
            return Status::Error("config_error",
                                 fmt::format("{}: {} must be a table", source, path));
          }
          return Status::Ok();
        }
        for (const auto& [k, node] : *table) {
          auto value = node.value_exact<std::string>();
          if (!value) {
            return Status::Error("config_error",
                                 fmt::format("{}: {}.{} must be a string", source, path, k.str()));
          }
          (*field)[std::string(k.str())] = *value;
        }
        return Status::Ok();
      },
      [field](const std::string& full) {
        std::string path = full.substr(0, full.size() - 2);
        for (const auto& [k, v] : *field) {
          if (!topics::IsValidId(k) || !topics::IsValidId(v)) {
            return Invalid(
                fmt::format("{}.{} = '{}': both must match [A-Za-z0-9_-]{{1,64}}", path, k, v));
          }
        }
        return Status::Ok();
      }});
}

OptionSet& OptionSet::Elsewhere(std::string key, std::string doc) {
  return Push(Option{std::move(key), std::move(doc), {}, {}, nullptr, nullptr});
}

OptionSet& OptionSet::Cli(std::string flag) {
  // A programming error, not a user's: caught by the first test that runs.
  if (options_.empty() || std::holds_alternative<std::monostate>(options_.back().field)) {
    throw std::logic_error("OptionSet::Cli(" + flag + ") follows no single-valued option");
  }
  options_.back().flag = std::move(flag);
  return *this;
}

std::vector<OptionSet::CliFlag> OptionSet::CliFlags() const {
  std::vector<CliFlag> flags;
  for (const Option& o : options_) {
    if (!o.flag.empty()) flags.push_back({o.flag, Full(o.key), o.doc, o.field});
  }
  return flags;
}

Status OptionSet::Read(const toml::table& root, std::string_view source) const {
  for (const Option& o : options_) {
    if (!o.read) continue;
    Status s = o.read(root, source, Full(o.key));
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status OptionSet::Validate() const {
  for (const Option& o : options_) {
    if (!o.validate) continue;
    Status s = o.validate(Full(o.key));
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

void OptionSet::AddKnownKeys(std::set<std::string>* out) const {
  for (const Option& o : options_) out->insert(Full(o.key));
}

std::vector<std::pair<std::string, std::string>> OptionSet::Docs() const {
  std::vector<std::pair<std::string, std::string>> docs;
  for (const Option& o : options_) docs.emplace_back(Full(o.key), o.doc);
  return docs;
}

}  // namespace derms::config
