#include "common/config.h"

#include <fmt/format.h>

namespace derms::config {
namespace {

Status WrongType(std::string_view source, std::string_view key, std::string_view want) {
  return Status::Error("config_error", fmt::format("{}: {} must be {}", source, key, want));
}

void CollectKeys(const toml::table& t, const std::string& prefix, std::vector<std::string>* out) {
  for (const auto& [k, v] : t) {
    std::string path = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = v.as_table()) {
      CollectKeys(*sub, path, out);
    } else {
      out->push_back(path);
    }
  }
}

}  // namespace

StatusOr<toml::table> ParseFile(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status::Error("config_error", fmt::format("{}:{}:{}: {}", path, e.source().begin.line,
                                                     e.source().begin.column, e.description()));
  }
}

Status Get(const toml::table& t, std::string_view source, std::string_view key, double* out) {
  toml::node_view<const toml::node> node = t.at_path(key);
  if (!node) return Status::Ok();
  if (auto i = node.value_exact<int64_t>()) {
    *out = static_cast<double>(*i);
    return Status::Ok();
  }
  auto v = node.value_exact<double>();
  if (!v) return WrongType(source, key, "a number");
  *out = *v;
  return Status::Ok();
}
Status Get(const toml::table& t, std::string_view source, std::string_view key, int64_t* out) {
  toml::node_view<const toml::node> node = t.at_path(key);
  if (!node) return Status::Ok();
  auto v = node.value_exact<int64_t>();
  if (!v) return WrongType(source, key, "an integer");
  *out = *v;
  return Status::Ok();
}
Status Get(const toml::table& t, std::string_view source, std::string_view key, bool* out) {
  toml::node_view<const toml::node> node = t.at_path(key);
  if (!node) return Status::Ok();
  auto v = node.value_exact<bool>();  // strict: 1 and 0 are not booleans
  if (!v) return WrongType(source, key, "true or false");
  *out = *v;
  return Status::Ok();
}
Status Get(const toml::table& t, std::string_view source, std::string_view key, std::string* out) {
  toml::node_view<const toml::node> node = t.at_path(key);
  if (!node) return Status::Ok();
  auto v = node.value_exact<std::string>();
  if (!v) return WrongType(source, key, "a string");
  *out = *v;
  return Status::Ok();
}
Status Get(const toml::table& t, std::string_view source, std::string_view key,
           std::vector<std::string>* out) {
  toml::node_view<const toml::node> node = t.at_path(key);
  if (!node) return Status::Ok();
  const toml::array* arr = node.as_array();
  if (!arr) return WrongType(source, key, "an array of strings");
  std::vector<std::string> values;
  for (const auto& item : *arr) {
    auto s = item.value_exact<std::string>();
    if (!s) return WrongType(source, key, "an array of strings");
    values.push_back(*s);
  }
  *out = std::move(values);
  return Status::Ok();
}

Status CheckKnownKeys(const toml::table& t, std::string_view source,
                      const std::set<std::string>& known) {
  std::vector<std::string> keys;
  CollectKeys(t, "", &keys);
  auto under_wildcard = [&known](const std::string& key) {
    for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
      if (known.count(key.substr(0, dot) + ".*")) return true;
    }
    return false;
  };
  for (const auto& k : keys) {
    if (!known.count(k) && !under_wildcard(k)) {
      return Status::Error("config_error", fmt::format("{}: unknown key '{}'", source, k));
    }
  }
  return Status::Ok();
}

}  // namespace derms::config
