#include "feeder/dss_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <sstream>

namespace derms::feeder {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kMaxRedirectDepth = 16;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Where a property was written, for error messages.
struct Origin {
  std::string file;
  int line = 0;
};

struct Property {
  std::string key;  // lower case; empty for a positional value
  std::string value;
  Origin origin;
};

struct Command {
  std::string verb;  // lower case
  Origin origin;
  std::vector<Property> props;
};

// One OpenDSS object ("line.l1") with its properties in the order written.
struct Object {
  std::string cls, name;  // lower case
  Origin origin;
  std::vector<Property> props;

  std::string Id() const { return cls + "." + name; }
  // The last value written for `key`, if any.
  const Property* Find(const std::string& key) const {
    const Property* found = nullptr;
    for (const auto& p : props) {
      if (p.key == key) found = &p;
    }
    return found;
  }
};

Status ErrorAt(const Origin& at, const std::string& what) {
  return Status::Error("feeder_parse", fmt::format("{}:{}: {}", at.file, at.line, what));
}

// Splits one line of script into properties: key=value (spaces allowed
// around '='), values in [], (), {}, "" or '' kept whole.
Status Tokenize(const std::string& text, const Origin& at, std::vector<Property>* out) {
  size_t i = 0;
  const size_t n = text.size();
  auto skip_space = [&] {
    while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == ',')) ++i;
  };
  auto read_value = [&](std::string* value) -> Status {
    if (i >= n) return ErrorAt(at, "value missing at end of line");
    char open = text[i];
    char close = open == '['    ? ']'
                 : open == '('  ? ')'
                 : open == '{'  ? '}'
                 : open == '"'  ? '"'
                 : open == '\'' ? '\''
                                : 0;
    if (close != 0) {
      size_t end = text.find(close, i + 1);
      if (end == std::string::npos) {
        return ErrorAt(at, fmt::format("'{}' opened and not closed on this line", open));
      }
      *value = text.substr(i + 1, end - i - 1);
      i = end + 1;
    } else {
      size_t start = i;
      while (i < n && text[i] != ' ' && text[i] != '\t') ++i;
      *value = text.substr(start, i - start);
    }
    return Status::Ok();
  };
  while (true) {
    skip_space();
    if (i >= n) break;
    if (text[i] == '[' || text[i] == '(' || text[i] == '"' || text[i] == '\'') {
      Property p{"", "", at};
      Status s = read_value(&p.value);
      if (!s.ok()) return s;
      out->push_back(p);
      continue;
    }
    size_t start = i;
    while (i < n && text[i] != ' ' && text[i] != '\t' && text[i] != '=') ++i;
    std::string word = text.substr(start, i - start);
    size_t after = i;
    while (after < n && (text[after] == ' ' || text[after] == '\t')) ++after;
    if (after < n && text[after] == '=') {
      i = after + 1;
      while (i < n && (text[i] == ' ' || text[i] == '\t')) ++i;
      Property p{Lower(word), "", at};
      Status s = read_value(&p.value);
      if (!s.ok()) return s;
      out->push_back(p);
    } else {
      out->push_back(Property{"", word, at});
    }
  }
  return Status::Ok();
}

class Reader {
 public:
  explicit Reader(ParseOptions options) : options_(std::move(options)) {}

  Status ReadFile(const std::filesystem::path& path, const Origin* from, int depth) {
    if (depth > kMaxRedirectDepth) {
      return ErrorAt(*from, fmt::format("redirects nested deeper than {}", kMaxRedirectDepth));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::string what = fmt::format("cannot read '{}'", path.string());
      return from ? ErrorAt(*from, what) : Status::Error("feeder_parse", what);
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    return ReadText(buffer.str(), path.filename().string(), path.parent_path(), depth);
  }

  Status ReadText(const std::string& text, const std::string& file_name,
                  const std::filesystem::path& dir, int depth) {
    std::istringstream lines(text);
    std::string raw;
    int line_no = 0;
    std::optional<Command> current;
    while (std::getline(lines, raw)) {
      ++line_no;
      if (!raw.empty() && raw.back() == '\r') raw.pop_back();
      size_t cut = std::min(raw.find('!'), raw.find("//"));
      std::string line = Trim(cut == std::string::npos ? raw : raw.substr(0, cut));
      if (line.empty()) continue;
      Origin at{file_name, line_no};
      bool more = line[0] == '~';
      std::string rest = more ? line.substr(1) : line;
      if (!more) {
        std::string first = Lower(rest.substr(0, rest.find_first_of(" \t")));
        if (first == "more" || first == "m") {
          more = true;
          rest = rest.substr(first.size());
        }
      }
      if (more) {
        if (!current) return ErrorAt(at, "'~' continues no New command");
        Status s = Tokenize(rest, at, &current->props);
        if (!s.ok()) return s;
        continue;
      }
      if (current) {
        Status s = Execute(*current, dir, depth);
        if (!s.ok()) return s;
        current.reset();
      }
      Command cmd;
      cmd.origin = at;
      size_t sp = rest.find_first_of(" \t");
      cmd.verb = Lower(rest.substr(0, sp));
      Status s = Tokenize(sp == std::string::npos ? "" : rest.substr(sp), at, &cmd.props);
      if (!s.ok()) return s;
      current = std::move(cmd);
    }
    if (current) return Execute(*current, dir, depth);
    return Status::Ok();
  }

  std::map<std::string, Object>& objects() { return objects_; }
  std::vector<std::string>& order() { return order_; }

 private:
  Status Execute(const Command& cmd, const std::filesystem::path& dir, int depth) {
    if (cmd.verb == "new") return New(cmd);
    if (cmd.verb == "redirect" || cmd.verb == "compile") {
      if (cmd.props.empty())
        return ErrorAt(cmd.origin, fmt::format("{}: file name missing", cmd.verb));
      std::filesystem::path target = dir / cmd.props[0].value;
      // The files are written on Windows: match the name case-insensitively.
      if (!std::filesystem::exists(target) && std::filesystem::is_directory(target.parent_path())) {
        for (const auto& e : std::filesystem::directory_iterator(target.parent_path())) {
          if (Lower(e.path().filename().string()) == Lower(target.filename().string())) {
            target = e.path();
          }
        }
      }
      return ReadFile(target, &cmd.origin, depth + 1);
    }
    static const std::set<std::string> kIgnored = {
        "clear", "set",  "calcvoltagebases", "calcv", "buscoords",
        "solve", "show", "export",           "plot",  "cd"};
    if (kIgnored.count(cmd.verb)) return Status::Ok();
    return ErrorAt(cmd.origin, fmt::format("command '{}' is not understood", cmd.verb));
  }

  Status New(const Command& cmd) {
    std::vector<Property> props = cmd.props;
    std::string full;
    if (!props.empty() && props[0].key.empty()) {
      full = props[0].value;
      props.erase(props.begin());
    } else if (!props.empty() && props[0].key == "object") {
      full = props[0].value;
      props.erase(props.begin());
    }
    size_t dot = full.find('.');
    if (full.empty() || dot == std::string::npos || dot == 0 || dot + 1 == full.size()) {
      return ErrorAt(cmd.origin, fmt::format("New '{}': expected CLASS.NAME", full));
    }
    Object obj;
    obj.cls = Lower(full.substr(0, dot));
    obj.name = Lower(full.substr(dot + 1));
    obj.origin = cmd.origin;
    for (const auto& p : props) {
      if (p.key.empty()) {
        return ErrorAt(p.origin,
                       fmt::format("{}: value '{}' has no property name", obj.Id(), p.value));
      }
      if (p.key == "like") {
        std::string like = obj.cls + "." + Lower(p.value);
        auto it = objects_.find(like);
        if (it == objects_.end()) {
          return ErrorAt(p.origin, fmt::format("{}: like '{}': no such {} defined before", obj.Id(),
                                               p.value, obj.cls));
        }
        for (const auto& inherited : it->second.props) obj.props.push_back(inherited);
        continue;
      }
      obj.props.push_back(p);
    }
    std::string id = obj.Id();
    if (objects_.count(id)) {
      return ErrorAt(cmd.origin, fmt::format("{}: defined twice (first at {}:{})", id,
                                             objects_[id].origin.file, objects_[id].origin.line));
    }
    order_.push_back(id);
    objects_[id] = std::move(obj);
    return Status::Ok();
  }

  ParseOptions options_;
  std::map<std::string, Object> objects_;
  std::vector<std::string> order_;
};

// ---- typed property access: every error names file:line: object: property

Status PropError(const Object& o, const Property& p, const std::string& rule) {
  return ErrorAt(p.origin, fmt::format("{}: {} '{}': {}", o.Id(), p.key, p.value, rule));
}

Status ParseDouble(const Object& o, const Property& p, double* out) {
  const char* s = p.value.c_str();
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (end == s || *end != '\0' || !std::isfinite(v)) return PropError(o, p, "not a number");
  *out = v;
  return Status::Ok();
}

// `key` as a number, or `fallback` when absent.
Status GetDouble(const Object& o, const std::string& key, double fallback, double* out) {
  const Property* p = o.Find(key);
  if (!p) {
    *out = fallback;
    return Status::Ok();
  }
  return ParseDouble(o, *p, out);
}

Status GetRequiredDouble(const Object& o, const std::string& key, double* out) {
  if (!o.Find(key)) return ErrorAt(o.origin, fmt::format("{}: {} missing", o.Id(), key));
  return GetDouble(o, key, 0, out);
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// A lower-triangular (or full) matrix "a | b c | d e f" of size n.
Status ParseMatrix(const Object& o, const Property& p, int n, std::vector<double>* out) {
  std::vector<std::vector<double>> rows;
  std::string row;
  std::istringstream in(p.value);
  while (std::getline(in, row, '|')) {
    std::vector<double> r;
    for (const auto& t : SplitList(row)) {
      Property single{p.key, t, p.origin};
      double v = 0;
      Status s = ParseDouble(o, single, &v);
      if (!s.ok()) return PropError(o, p, fmt::format("element '{}' is not a number", t));
      r.push_back(v);
    }
    rows.push_back(r);
  }
  if (static_cast<int>(rows.size()) != n) {
    return PropError(o, p, fmt::format("{} row(s), expected {} (nphases)", rows.size(), n));
  }
  out->assign(static_cast<size_t>(n * n), 0.0);
  for (int i = 0; i < n; ++i) {
    int len = static_cast<int>(rows[i].size());
    if (len != i + 1 && len != n) {
      return PropError(
          o, p, fmt::format("row {} has {} value(s), expected {} or {}", i + 1, len, i + 1, n));
    }
    for (int j = 0; j < len; ++j) {
      (*out)[i * n + j] = rows[i][j];
      if (len == i + 1) (*out)[j * n + i] = rows[i][j];
    }
  }
  return Status::Ok();
}

// Length unit in kft; 0 for "none".
Status UnitKft(const Object& o, const Property* p, double* kft) {
  if (!p) {
    *kft = 0;
    return Status::Ok();
  }
  static const std::map<std::string, double> kUnits = {{"none", 0},         {"kft", 1},
                                                       {"ft", 1e-3},        {"mi", 5.28},
                                                       {"km", 3.280839895}, {"m", 3.280839895e-3},
                                                       {"in", 1.0 / 12000}, {"cm", 3.280839895e-5}};
  auto it = kUnits.find(Lower(p->value));
  if (it == kUnits.end())
    return PropError(o, *p, "unit must be one of none, kft, ft, mi, km, m, in, cm");
  *kft = it->second;
  return Status::Ok();
}

struct BusRef {
  std::string bus;         // lower case, no suffix
  std::vector<int> nodes;  // as written (1-based); empty: default
};

BusRef SplitBus(const std::string& spec) {
  BusRef ref;
  size_t dot = spec.find('.');
  ref.bus = Lower(spec.substr(0, dot));
  while (dot != std::string::npos) {
    size_t next = spec.find('.', dot + 1);
    std::string part =
        spec.substr(dot + 1, next == std::string::npos ? std::string::npos : next - dot - 1);
    ref.nodes.push_back(std::atoi(part.c_str()));
    dot = next;
  }
  return ref;
}

// The phase nodes (0-based, 0..2) of a terminal with `phases` conductors.
Status TerminalPhases(const Object& o, const Property& p, int phases, std::vector<int>* out) {
  BusRef ref = SplitBus(p.value);
  out->clear();
  if (ref.bus.empty()) return PropError(o, p, "bus name missing");
  if (ref.nodes.empty()) {
    for (int i = 0; i < phases; ++i) out->push_back(i);
    return Status::Ok();
  }
  for (int node : ref.nodes) {
    if (node == 0) continue;  // ground / neutral
    if (node < 1 || node > 3)
      return PropError(o, p, fmt::format("node {} is not 0, 1, 2 or 3", node));
    out->push_back(node - 1);
  }
  return Status::Ok();
}

struct RawBranch {
  Branch branch;
  std::string bus1, bus2;
  std::vector<int> nodes;  // phases of the branch, in conductor order
  Mat3 z_ohm{};            // by phase (not conductor)
  Mat3 y_half_s{};
  double z_pu_own_base = 0;  // transformers: |z| on own kVA base
  double r_pu_own = 0, x_pu_own = 0, kva = 0;
  double kv_ratio = 1;  // transformers: kv2 / kv1
  Origin origin;
};

Status BuildLine(const Object& o, const std::map<std::string, Object>& objects, RawBranch* rb) {
  rb->origin = o.origin;
  rb->branch.name = o.Id();
  const Property* b1 = o.Find("bus1");
  const Property* b2 = o.Find("bus2");
  if (!b1 || !b2) return ErrorAt(o.origin, fmt::format("{}: bus1 and bus2 are required", o.Id()));
  double phases_d = 3;
  Status s = GetDouble(o, "phases", 3, &phases_d);
  if (!s.ok()) return s;
  int phases = static_cast<int>(phases_d);
  if (phases < 1 || phases > 3 || phases != phases_d) {
    return PropError(o, *o.Find("phases"), "must be 1, 2 or 3");
  }
  s = TerminalPhases(o, *b1, phases, &rb->nodes);
  if (!s.ok()) return s;
  if (static_cast<int>(rb->nodes.size()) != phases) {
    return PropError(o, *b1,
                     fmt::format("{} phase node(s) for phases={}", rb->nodes.size(), phases));
  }
  std::vector<int> nodes2;
  s = TerminalPhases(o, *b2, phases, &nodes2);
  if (!s.ok()) return s;
  if (nodes2 != rb->nodes) {
    return PropError(o, *b2, "a line must join the same phases at both ends");
  }
  rb->bus1 = SplitBus(b1->value).bus;
  rb->bus2 = SplitBus(b2->value).bus;
  double length = 1;
  s = GetDouble(o, "length", 1, &length);
  if (!s.ok()) return s;
  if (length < 0) return PropError(o, *o.Find("length"), "must be >= 0");
  double line_unit = 0;
  s = UnitKft(o, o.Find("units"), &line_unit);
  if (!s.ok()) return s;

  int n = phases;
  std::vector<double> r(n * n, 0), x(n * n, 0), c(n * n, 0);
  double code_unit = 0;
  const Property* code = o.Find("linecode");
  if (code) {
    auto it = objects.find("linecode." + Lower(code->value));
    if (it == objects.end()) return PropError(o, *code, "no such linecode");
    const Object& lc = it->second;
    double nph = 3;
    s = GetDouble(lc, "nphases", 3, &nph);
    if (!s.ok()) return s;
    if (static_cast<int>(nph) != n) {
      return PropError(o, *code, fmt::format("linecode has {} phase(s), the line {}", nph, n));
    }
    s = UnitKft(lc, lc.Find("units"), &code_unit);
    if (!s.ok()) return s;
    const Property* rm = lc.Find("rmatrix");
    const Property* xm = lc.Find("xmatrix");
    if (rm && xm) {
      s = ParseMatrix(lc, *rm, n, &r);
      if (!s.ok()) return s;
      s = ParseMatrix(lc, *xm, n, &x);
      if (!s.ok()) return s;
      if (const Property* cm = lc.Find("cmatrix")) {
        s = ParseMatrix(lc, *cm, n, &c);
        if (!s.ok()) return s;
      }
    } else {
      double r1, x1, r0, x0, c1, c0;
      for (auto [key, dst, def] : {std::tuple{"r1", &r1, 0.058},
                                   {"x1", &x1, 0.1206},
                                   {"r0", &r0, 0.1784},
                                   {"x0", &x0, 0.4047},
                                   {"c1", &c1, 3.4},
                                   {"c0", &c0, 1.6}}) {
        s = GetDouble(lc, key, def, dst);
        if (!s.ok()) return s;
      }
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
          r[i * n + j] = i == j ? (2 * r1 + r0) / 3 : (r0 - r1) / 3;
          x[i * n + j] = i == j ? (2 * x1 + x0) / 3 : (x0 - x1) / 3;
          c[i * n + j] = i == j ? (2 * c1 + c0) / 3 : (c0 - c1) / 3;
        }
    }
  } else {
    double r1, x1, r0, x0;
    for (auto [key, dst, def] : {std::tuple{"r1", &r1, 0.058},
                                 {"x1", &x1, 0.1206},
                                 {"r0", &r0, 0.1784},
                                 {"x0", &x0, 0.4047}}) {
      s = GetDouble(o, key, def, dst);
      if (!s.ok()) return s;
    }
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        r[i * n + j] = i == j ? (2 * r1 + r0) / 3 : (r0 - r1) / 3;
        x[i * n + j] = i == j ? (2 * x1 + x0) / 3 : (x0 - x1) / 3;
      }
    rb->branch.kind = BranchKind::kSwitch;
  }
  // Length in the linecode's unit (a line without units uses the code's).
  double scale = length;
  if (line_unit != 0 && code_unit != 0) scale = length * line_unit / code_unit;
  double length_kft = line_unit != 0 ? length * line_unit : code_unit != 0 ? length * code_unit : 0;
  rb->branch.length_kft = rb->branch.kind == BranchKind::kSwitch ? 0 : length_kft;
  const double omega = 2 * kPi * 60;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      int pi = rb->nodes[i], pj = rb->nodes[j];
      rb->z_ohm[pi][pj] = Complex(r[i * n + j], x[i * n + j]) * scale;
      rb->y_half_s[pi][pj] = Complex(0, omega * c[i * n + j] * 1e-9 * scale / 2);
    }
  for (int p : rb->nodes) rb->branch.phases[p] = true;
  return Status::Ok();
}

Status BuildTransformer(const Object& o, RawBranch* rb) {
  rb->origin = o.origin;
  rb->branch.name = o.Id();
  rb->branch.kind = BranchKind::kTransformer;
  double phases_d = 3;
  Status s = GetDouble(o, "phases", 3, &phases_d);
  if (!s.ok()) return s;
  int phases = static_cast<int>(phases_d);
  if (phases < 1 || phases > 3) return PropError(o, *o.Find("phases"), "must be 1, 2 or 3");
  double windings = 2;
  s = GetDouble(o, "windings", 2, &windings);
  if (!s.ok()) return s;
  if (windings != 2) return PropError(o, *o.Find("windings"), "only two-winding transformers");
  // Walk the properties in order: wdg= selects the winding that bus=, kv=,
  // kva=, %r= and conn= set; buses=[..], kvs=[..] etc. set both.
  std::array<std::string, 2> bus;
  std::array<double, 2> kv{12.47, 12.47}, kva{1000, 1000}, pct_r{0.2, 0.2};
  double xhl = 7, loadloss = -1;
  int wdg = 0;
  for (const auto& p : o.props) {
    auto one = [&](double* dst) { return ParseDouble(o, p, dst); };
    auto both = [&](std::array<double, 2>* dst) -> Status {
      auto items = SplitList(p.value);
      if (items.size() != 2) return PropError(o, p, "expected two values");
      for (int w = 0; w < 2; ++w) {
        Property single{p.key, items[w], p.origin};
        Status st = ParseDouble(o, single, &(*dst)[w]);
        if (!st.ok()) return st;
      }
      return Status::Ok();
    };
    Status st;
    if (p.key == "wdg") {
      double w = 0;
      st = one(&w);
      if (st.ok() && w != 1 && w != 2) st = PropError(o, p, "must be 1 or 2");
      wdg = static_cast<int>(w) - 1;
    } else if (p.key == "bus") {
      bus[wdg] = p.value;
    } else if (p.key == "buses") {
      auto items = SplitList(p.value);
      if (items.size() != 2)
        st = PropError(o, p, "expected two buses");
      else
        bus = {items[0], items[1]};
    } else if (p.key == "kv") {
      st = one(&kv[wdg]);
    } else if (p.key == "kvs") {
      st = both(&kv);
    } else if (p.key == "kva") {
      st = one(&kva[wdg]);
    } else if (p.key == "kvas") {
      st = both(&kva);
    } else if (p.key == "%r") {
      st = one(&pct_r[wdg]);
    } else if (p.key == "%rs") {
      st = both(&pct_r);
    } else if (p.key == "xhl" || p.key == "x12") {
      st = one(&xhl);
    } else if (p.key == "%loadloss") {
      st = one(&loadloss);
    }
    if (!st.ok()) return st;
  }
  for (int w = 0; w < 2; ++w) {
    if (bus[w].empty())
      return ErrorAt(o.origin, fmt::format("{}: winding {} has no bus", o.Id(), w + 1));
    if (kv[w] <= 0 || kva[w] <= 0) {
      return ErrorAt(o.origin, fmt::format("{}: winding {} kv and kva must be > 0", o.Id(), w + 1));
    }
  }
  Property b1{"buses", bus[0], o.origin}, b2{"buses", bus[1], o.origin};
  s = TerminalPhases(o, b1, phases, &rb->nodes);
  if (!s.ok()) return s;
  std::vector<int> nodes2;
  s = TerminalPhases(o, b2, phases, &nodes2);
  if (!s.ok()) return s;
  if (nodes2 != rb->nodes || static_cast<int>(rb->nodes.size()) != phases) {
    return PropError(o, b2, "a transformer must join the same phases on both sides");
  }
  rb->bus1 = SplitBus(bus[0]).bus;
  rb->bus2 = SplitBus(bus[1]).bus;
  rb->kv_ratio = kv[1] / kv[0];
  rb->kva = kva[0];
  rb->r_pu_own = loadloss >= 0 ? loadloss / 100 : (pct_r[0] + pct_r[1]) / 100;
  rb->x_pu_own = xhl / 100;
  for (int p : rb->nodes) rb->branch.phases[p] = true;
  return Status::Ok();
}

}  // namespace

int FeederModel::FindBus(const std::string& name) const {
  std::string key = Lower(name);
  for (size_t i = 0; i < buses.size(); ++i) {
    if (buses[i].name == key) return static_cast<int>(i);
  }
  return -1;
}

bool FeederModel::SetTap(const std::string& regulator, int tap) {
  std::string key = Lower(regulator);
  bool found = false;
  for (auto& b : branches) {
    if (b.kind != BranchKind::kRegulator) continue;
    for (int p = 0; p < 3; ++p) {
      if (b.phases[p] && b.regulator[p] == key) {
        b.tap[p] = tap;
        found = true;
      }
    }
  }
  return found;
}

std::vector<std::pair<std::string, int>> FeederModel::Taps() const {
  std::vector<std::pair<std::string, int>> out;
  for (const auto& b : branches) {
    if (b.kind != BranchKind::kRegulator) continue;
    for (int p = 0; p < 3; ++p) {
      if (!b.phases[p]) continue;
      bool seen = false;
      for (const auto& t : out) seen = seen || t.first == b.regulator[p];
      if (!seen) out.emplace_back(b.regulator[p], b.tap[p]);
    }
  }
  return out;
}

namespace {

StatusOr<FeederModel> Build(Reader& reader, const ParseOptions& options) {
  auto& objects = reader.objects();
  FeederModel model;
  // The circuit and its source.
  const Object* circuit = nullptr;
  for (const auto& id : reader.order()) {
    if (objects[id].cls == "circuit") {
      if (circuit) return ErrorAt(objects[id].origin, "a second circuit");
      circuit = &objects[id];
    }
  }
  if (!circuit)
    return Status::Error("feeder_parse", "no circuit defined (New object=circuit.NAME)");
  model.name = circuit->name;
  double base_kv = 115;
  Status s = GetDouble(*circuit, "basekv", 115, &base_kv);
  if (!s.ok()) return s;
  s = GetDouble(*circuit, "pu", 1.0, &model.source_pu);
  if (!s.ok()) return s;
  std::string source_bus = "sourcebus";
  if (const Property* b = circuit->Find("bus1")) source_bus = SplitBus(b->value).bus;

  // Regulated transformers: those a regcontrol points at.
  std::set<std::string> regulated;
  for (const auto& id : reader.order()) {
    const Object& o = objects[id];
    if (o.cls != "regcontrol") continue;
    const Property* t = o.Find("transformer");
    if (!t) return ErrorAt(o.origin, fmt::format("{}: transformer missing", o.Id()));
    std::string target = "transformer." + Lower(t->value);
    if (!objects.count(target)) return PropError(o, *t, "no such transformer");
    regulated.insert(Lower(t->value));
  }

  std::vector<RawBranch> raw;
  for (const auto& id : reader.order()) {
    const Object& o = objects[id];
    RawBranch rb;
    if (o.cls == "line") {
      if (std::find(options.open_lines.begin(), options.open_lines.end(), o.name) !=
          options.open_lines.end()) {
        continue;
      }
      s = BuildLine(o, objects, &rb);
      if (!s.ok()) return s;
      auto ends_open = [](const std::string& b) {
        return b.size() > 5 && b.compare(b.size() - 5, 5, "_open") == 0;
      };
      if (ends_open(rb.bus1) || ends_open(rb.bus2)) continue;
    } else if (o.cls == "transformer") {
      s = BuildTransformer(o, &rb);
      if (!s.ok()) return s;
      if (regulated.count(o.name)) {
        rb.branch.kind = BranchKind::kRegulator;
        for (int p : rb.nodes) rb.branch.regulator[p] = o.name;
      }
    } else {
      continue;
    }
    raw.push_back(std::move(rb));
  }
  // Single-phase regulators between the same pair of buses form one bank.
  std::vector<RawBranch> merged;
  for (auto& rb : raw) {
    bool joined = false;
    if (rb.branch.kind == BranchKind::kRegulator) {
      for (auto& m : merged) {
        if (m.branch.kind == BranchKind::kRegulator && m.bus1 == rb.bus1 && m.bus2 == rb.bus2) {
          for (int p : rb.nodes) {
            if (m.branch.phases[p]) {
              return ErrorAt(rb.origin, fmt::format("{}: phase {} already regulated by {}",
                                                    rb.branch.name, p + 1, m.branch.name));
            }
            m.branch.phases[p] = true;
            m.branch.regulator[p] = rb.branch.regulator[p];
            m.nodes.push_back(p);
          }
          m.branch.name = "regulators " + m.bus1 + "-" + m.bus2;
          joined = true;
        }
      }
    }
    if (!joined) merged.push_back(std::move(rb));
  }

  // Breadth-first from the source: orients every branch and orders buses.
  std::map<std::string, std::vector<int>> adjacent;
  for (size_t i = 0; i < merged.size(); ++i) {
    adjacent[merged[i].bus1].push_back(static_cast<int>(i));
    adjacent[merged[i].bus2].push_back(static_cast<int>(i));
  }
  std::map<std::string, int> index;
  Bus src;
  src.name = source_bus;
  src.base_kv_ll = base_kv;
  src.phases = {true, true, true};
  model.buses.push_back(src);
  index[source_bus] = 0;
  std::vector<bool> used(merged.size(), false);
  std::queue<int> todo;
  todo.push(0);
  while (!todo.empty()) {
    int bi = todo.front();
    todo.pop();
    std::string name = model.buses[bi].name;
    for (int ei : adjacent[name]) {
      if (used[ei]) continue;
      used[ei] = true;
      RawBranch& rb = merged[ei];
      bool forward = rb.bus1 == name;
      const std::string& other = forward ? rb.bus2 : rb.bus1;
      if (index.count(other)) {
        return ErrorAt(rb.origin, fmt::format("{}: closes a loop at bus '{}' (the solver needs a "
                                              "radial feeder)",
                                              rb.branch.name, other));
      }
      for (int p : rb.nodes) {
        if (!model.buses[bi].phases[p]) {
          return ErrorAt(rb.origin, fmt::format("{}: phase {} is not present at bus '{}' upstream",
                                                rb.branch.name, p + 1, name));
        }
      }
      Bus child;
      child.name = other;
      double ratio = rb.branch.kind == BranchKind::kTransformer ? rb.kv_ratio : 1.0;
      if (!forward) ratio = 1 / ratio;
      child.base_kv_ll = model.buses[bi].base_kv_ll * ratio;
      child.phases = rb.branch.phases;
      child.parent_branch = static_cast<int>(model.branches.size());
      child.distance_kft = model.buses[bi].distance_kft + rb.branch.length_kft;
      int ci = static_cast<int>(model.buses.size());
      index[other] = ci;
      model.buses.push_back(child);
      Branch br = rb.branch;
      br.from_bus = bi;
      br.to_bus = ci;
      // Per unit on the upstream bus's base (lines keep one base).
      double zbase = model.buses[bi].base_kv_ll * model.buses[bi].base_kv_ll * 1000.0 / kBaseKva;
      if (br.kind == BranchKind::kLine || br.kind == BranchKind::kSwitch) {
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) {
            br.z_pu[i][j] = rb.z_ohm[i][j] / zbase;
            br.y_half_pu[i][j] = rb.y_half_s[i][j] * zbase;
          }
      } else if (br.kind == BranchKind::kTransformer) {
        // Delta-delta or wye-wye with no phase shift: the series impedance
        // per phase, moved from its own kVA base to the system base.
        Complex z(rb.r_pu_own, rb.x_pu_own);
        for (int p : rb.nodes) br.z_pu[p][p] = z * (kBaseKva / rb.kva);
      }
      // Regulators: no impedance (as Kersting assumes).
      model.branches.push_back(br);
      todo.push(ci);
    }
  }
  for (size_t i = 0; i < merged.size(); ++i) {
    if (!used[i]) {
      return ErrorAt(merged[i].origin, fmt::format("{}: not connected to the source bus '{}'",
                                                   merged[i].branch.name, source_bus));
    }
  }

  // Loads and capacitors.
  for (const auto& id : reader.order()) {
    const Object& o = objects[id];
    if (o.cls != "load" && o.cls != "capacitor") continue;
    const Property* b = o.Find("bus1");
    if (!b) return ErrorAt(o.origin, fmt::format("{}: bus1 missing", o.Id()));
    BusRef ref = SplitBus(b->value);
    auto it = index.find(ref.bus);
    if (it == index.end()) return PropError(o, *b, "bus is not connected to the source");
    const Bus& bus = model.buses[it->second];
    double phases_d = 3;
    s = GetDouble(o, "phases", 3, &phases_d);
    if (!s.ok()) return s;
    int phases = static_cast<int>(phases_d);
    if (phases < 1 || phases > 3 || phases != phases_d) {
      return PropError(o, *o.Find("phases"), "must be 1, 2 or 3");
    }
    std::vector<int> nodes;
    s = TerminalPhases(o, *b, phases, &nodes);
    if (!s.ok()) return s;
    for (int p : nodes) {
      if (!bus.phases[p])
        return PropError(o, *b, fmt::format("phase {} is not present at the bus", p + 1));
    }
    std::string conn = "wye";
    if (const Property* c = o.Find("conn")) {
      conn = Lower(c->value);
      if (conn == "y" || conn == "ln") conn = "wye";
      if (conn == "d" || conn == "ll") conn = "delta";
      if (conn != "wye" && conn != "delta") return PropError(o, *c, "must be wye or delta");
    }
    double kv = 0;
    s = GetRequiredDouble(o, "kv", &kv);
    if (!s.ok()) return s;
    if (kv <= 0) return PropError(o, *o.Find("kv"), "must be > 0");
    const double base_ln = bus.base_kv_ll / std::sqrt(3.0);
    if (o.cls == "capacitor") {
      if (conn != "wye") return PropError(o, *o.Find("conn"), "only wye capacitors are supported");
      double kvar = 0;
      s = GetRequiredDouble(o, "kvar", &kvar);
      if (!s.ok()) return s;
      if (static_cast<int>(nodes.size()) != phases) {
        return PropError(o, *b, fmt::format("{} node(s) for phases={}", nodes.size(), phases));
      }
      double rated_ln = phases == 1 ? kv : kv / std::sqrt(3.0);
      for (int p : nodes) {
        model.capacitors.push_back({o.name, it->second, p, kvar / phases, rated_ln / base_ln});
      }
      continue;
    }
    double kw = 0, kvar = 0, model_d = 1;
    s = GetRequiredDouble(o, "kw", &kw);
    if (!s.ok()) return s;
    s = GetDouble(o, "kvar", 0, &kvar);
    if (!s.ok()) return s;
    s = GetDouble(o, "model", 1, &model_d);
    if (!s.ok()) return s;
    int m = static_cast<int>(model_d);
    if ((m != 1 && m != 2 && m != 5) || m != model_d) {
      return PropError(o, *o.Find("model"),
                       "only models 1 (constant PQ), 2 (constant Z) and 5 "
                       "(constant |I|) are supported");
    }
    LoadPart part;
    part.load = o.name;
    part.bus = it->second;
    part.model = static_cast<LoadModel>(m);
    if (phases == 1) {
      part.kw = kw;
      part.kvar = kvar;
      if (nodes.size() == 2) {  // between two phases, whatever conn says
        part.connection = Connection::kDelta;
        part.phase = nodes[0];
        part.phase2 = nodes[1];
        part.rated_pu = kv / base_ln;
      } else if (nodes.size() == 1) {
        if (conn == "delta") {
          return PropError(o, *b, "a single-phase delta load needs two phase nodes (BUS.1.2)");
        }
        part.phase = nodes[0];
        part.rated_pu = kv / base_ln;
      } else {
        return PropError(o, *b, "a single-phase load needs one or two phase nodes");
      }
      model.loads.push_back(part);
    } else {
      if (static_cast<int>(nodes.size()) != phases) {
        return PropError(o, *b, fmt::format("{} node(s) for phases={}", nodes.size(), phases));
      }
      part.kw = kw / phases;
      part.kvar = kvar / phases;
      if (conn == "wye") {
        part.rated_pu = kv / std::sqrt(3.0) / base_ln;
        for (int p : nodes) {
          part.phase = p;
          model.loads.push_back(part);
        }
      } else {
        if (phases != 3) return PropError(o, *b, "a delta load of more than one phase needs three");
        part.connection = Connection::kDelta;
        part.rated_pu = kv / base_ln;
        for (int k = 0; k < 3; ++k) {
          part.phase = nodes[k];
          part.phase2 = nodes[(k + 1) % 3];
          model.loads.push_back(part);
        }
      }
    }
  }
  // Keep loads in file order but check values.
  for (const auto& l : model.loads) {
    if (!std::isfinite(l.kw) || !std::isfinite(l.kvar)) {
      return Status::Error("feeder_parse", fmt::format("load.{}: kW/kvar not finite", l.load));
    }
  }
  return model;
}

}  // namespace

StatusOr<FeederModel> ParseDssFile(const std::string& master_path, const ParseOptions& options) {
  Reader reader(options);
  Status s = reader.ReadFile(master_path, nullptr, 0);
  if (!s.ok()) return s;
  return Build(reader, options);
}

StatusOr<FeederModel> ParseDssText(const std::string& text, const std::string& file_name,
                                   const ParseOptions& options) {
  Reader reader(options);
  std::filesystem::path dir =
      file_name.empty() ? std::filesystem::path() : std::filesystem::path(file_name).parent_path();
  Status s = reader.ReadText(text, std::filesystem::path(file_name).filename().string(), dir, 0);
  if (!s.ok()) return s;
  return Build(reader, options);
}

StatusOr<std::string> FindMasterFile(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::Error("feeder_parse", fmt::format("--feeder '{}': not a directory", dir));
  }
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = Lower(e.path().filename().string());
    if (name.find("master") != std::string::npos && name.size() > 4 &&
        name.compare(name.size() - 4, 4, ".dss") == 0) {
      found.push_back(e.path().string());
    }
  }
  if (found.size() != 1) {
    return Status::Error("feeder_parse", fmt::format("--feeder '{}': expected one *master*.dss "
                                                     "file, found {}",
                                                     dir, found.size()));
  }
  return found[0];
}

}  // namespace derms::feeder
