#include "cloud_aggregator/scheduling/price_book.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iterator>
#include <limits>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

#include "common/clock.h"
#include "common/topics.h"

namespace derms::scheduling {
namespace {

constexpr int64_t kMinDurationS = 60;
constexpr int64_t kMaxDurationS = 86400;
constexpr double kMaxAbsPrice = 100000;
// 10000-01-01T00:00:00Z: keeps start + duration far from int64 overflow and
// every instant printable as a four-digit-year ISO-8601 date.
constexpr int64_t kEndOfTimeMs = 253402300800000;
constexpr std::string_view kCsvHeader = "node,issued_ms,kind,start_ms,duration_s,price_per_mwh";
constexpr size_t kCsvColumns = 6;

std::string_view KindName(ForecastKind kind) {
  return kind == ForecastKind::kShortTerm ? "short_term" : "long_term";
}

// Ids are shown in messages, so a hostile one is cut short.
std::string Shown(std::string_view text) { return std::string(text.substr(0, 80)); }

// Each rule returns what is wrong with the value ("" when it is fine), worded
// to follow the field's name and value: shared by ValidateForecast and the
// CSV reader so both enforce, and say, the same thing.
std::string StartRule(int64_t start_ms) {
  if (start_ms <= 0) return "must be > 0";
  if (start_ms % 1000 != 0) return "is not a whole second (a multiple of 1000)";
  if (start_ms >= kEndOfTimeMs) return fmt::format("is not before year 10000 ({})", kEndOfTimeMs);
  return "";
}

std::string DurationRule(int64_t duration_s) {
  if (duration_s < kMinDurationS || duration_s > kMaxDurationS) {
    return fmt::format("is outside [{}, {}]", kMinDurationS, kMaxDurationS);
  }
  return "";
}

std::string PriceRule(double price_per_mwh) {
  if (!std::isfinite(price_per_mwh)) return "is not finite";
  if (std::fabs(price_per_mwh) > kMaxAbsPrice) {
    return fmt::format("is outside [{}, {}]", -kMaxAbsPrice, kMaxAbsPrice);
  }
  return "";
}

std::string IssuedRule(int64_t issued_ms) { return issued_ms > 0 ? "" : "must be > 0"; }

int64_t EndMs(const PriceInterval& interval) {
  return interval.start_ms + interval.duration_s * 1000;
}

int64_t FloorToSecond(int64_t ms) { return ms - ((ms % 1000) + 1000) % 1000; }
int64_t CeilToSecond(int64_t ms) {
  int64_t floor = FloorToSecond(ms);
  return floor == ms ? ms : floor + 1000;
}

std::string Instant(int64_t ms) { return fmt::format("{} ({})", ms, FormatUtc(ms)); }

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t begin = 0;
  while (true) {
    size_t comma = line.find(',', begin);
    if (comma == std::string_view::npos) {
      fields.push_back(Trim(line.substr(begin)));
      return fields;
    }
    fields.push_back(Trim(line.substr(begin, comma - begin)));
    begin = comma + 1;
  }
}

// "" when `text` is a whole decimal int64, else why not.
std::string ParseInt(std::string_view text, int64_t* value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  if (ec == std::errc::result_out_of_range) return "is out of range for a 64-bit integer";
  if (ec != std::errc() || end != text.data() + text.size()) return "is not an integer";
  return "";
}

std::string ParseDouble(std::string_view text, double* value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  if (ec == std::errc::result_out_of_range) return "is out of range";
  if (ec != std::errc() || end != text.data() + text.size()) return "is not a number";
  return "";
}

}  // namespace

Status ValidateForecast(const PriceForecast& forecast) {
  std::string what = fmt::format("price forecast for node '{}' issued_ms {} ({})",
                                 Shown(forecast.node), forecast.issued_ms, KindName(forecast.kind));
  auto invalid = [&](const std::string& detail) {
    return Status::Error("invalid_field", fmt::format("{}: {}", what, detail));
  };
  if (!topics::IsValidId(forecast.node)) {
    return invalid(
        fmt::format("node '{}' does not match [A-Za-z0-9_-]{{1,64}}", Shown(forecast.node)));
  }
  if (std::string rule = IssuedRule(forecast.issued_ms); !rule.empty()) {
    return invalid(fmt::format("issued_ms {} {}", forecast.issued_ms, rule));
  }
  if (forecast.intervals.empty()) return invalid("intervals is empty: at least one is required");
  for (size_t i = 0; i < forecast.intervals.size(); ++i) {
    const PriceInterval& interval = forecast.intervals[i];
    if (std::string rule = StartRule(interval.start_ms); !rule.empty()) {
      return invalid(fmt::format("intervals[{}].start_ms {} {}", i, interval.start_ms, rule));
    }
    if (std::string rule = DurationRule(interval.duration_s); !rule.empty()) {
      return invalid(fmt::format("intervals[{}].duration_s {} {}", i, interval.duration_s, rule));
    }
    if (std::string rule = PriceRule(interval.price_per_mwh); !rule.empty()) {
      return invalid(
          fmt::format("intervals[{}].price_per_mwh {} {}", i, interval.price_per_mwh, rule));
    }
    if (i > 0 && interval.start_ms < EndMs(forecast.intervals[i - 1])) {
      return invalid(fmt::format(
          "intervals[{}].start_ms {} is before the end {} of intervals[{}]: intervals must be in "
          "start order and not overlap",
          i, interval.start_ms, EndMs(forecast.intervals[i - 1]), i - 1));
    }
  }
  return Status::Ok();
}

MergeStats PriceBook::Merge(const PriceForecast& forecast) {
  MergeStats stats;
  std::map<int64_t, PriceSegment>& timeline = nodes_[forecast.node];
  // The segment straddling `ms`, if any, else the first one starting after it.
  auto first_reaching = [&timeline](int64_t ms) {
    auto it = timeline.lower_bound(ms);
    if (it != timeline.begin() && std::prev(it)->second.end_ms > ms) --it;
    return it;
  };
  for (const PriceInterval& interval : forecast.intervals) {
    int64_t start = interval.start_ms;
    int64_t end = EndMs(interval);
    if (end <= start) {  // only when the REQUIRES was ignored
      ++stats.intervals_ignored;
      continue;
    }
    // Older (or equally old) segments give up [start, end); what they held
    // outside it stays, as their own clipped segments.
    std::vector<PriceSegment> remnants;
    for (auto it = first_reaching(start); it != timeline.end() && it->second.start_ms < end;) {
      if (it->second.issued_ms > forecast.issued_ms) {
        ++it;
        continue;
      }
      PriceSegment old = it->second;
      it = timeline.erase(it);
      ++stats.segments_replaced;
      if (old.start_ms < start) {
        PriceSegment left = old;
        left.end_ms = start;
        remnants.push_back(left);
      }
      if (old.end_ms > end) {
        PriceSegment right = old;
        right.start_ms = end;
        remnants.push_back(right);
      }
    }
    for (const PriceSegment& remnant : remnants) timeline.emplace(remnant.start_ms, remnant);

    // Only newer segments are left inside [start, end): fill around them.
    std::vector<PriceSegment> fills;
    auto fill = [&](int64_t from_ms, int64_t to_ms) {
      fills.push_back(
          PriceSegment{from_ms, to_ms, interval.price_per_mwh, forecast.issued_ms, forecast.kind});
    };
    int64_t cursor = start;
    for (auto it = first_reaching(start); it != timeline.end() && it->second.start_ms < end; ++it) {
      if (it->second.start_ms > cursor) fill(cursor, it->second.start_ms);
      cursor = std::max(cursor, it->second.end_ms);
    }
    if (cursor < end) fill(cursor, end);
    for (const PriceSegment& segment : fills) timeline.emplace(segment.start_ms, segment);
    if (fills.empty()) {
      ++stats.intervals_ignored;
    } else {
      ++stats.intervals_added;
    }
  }
  if (timeline.empty()) nodes_.erase(forecast.node);
  return stats;
}

size_t PriceBook::Purge(int64_t now_ms, int64_t keep_past_ms) {
  int64_t cutoff = 0;
  // Saturate rather than wrap, so an absurd `keep_past_ms` cannot purge all.
  if (__builtin_sub_overflow(now_ms, keep_past_ms, &cutoff)) {
    cutoff = keep_past_ms > 0 ? std::numeric_limits<int64_t>::min()
                              : std::numeric_limits<int64_t>::max();
  }
  size_t removed = 0;
  for (auto node = nodes_.begin(); node != nodes_.end();) {
    std::map<int64_t, PriceSegment>& timeline = node->second;
    // Segments do not overlap, so ends rise with starts: the expired ones
    // are a prefix.
    while (!timeline.empty() && timeline.begin()->second.end_ms <= cutoff) {
      timeline.erase(timeline.begin());
      ++removed;
    }
    // A node with nothing left is forgotten, as if never heard of.
    node = timeline.empty() ? nodes_.erase(node) : std::next(node);
  }
  return removed;
}

StatusOr<std::vector<PriceInterval>> PriceBook::Window(const std::string& node, int64_t from_ms,
                                                       int64_t to_ms) const {
  if (from_ms >= to_ms) {
    return Status::Error(
        "invalid_value",
        fmt::format("price window for node '{}': from_ms {} is not before to_ms {}", Shown(node),
                    from_ms, to_ms));
  }
  // Intervals carry whole-second durations, so the window shrinks to the
  // whole seconds inside it (segment edges are whole seconds already).
  int64_t from = CeilToSecond(from_ms);
  int64_t to = FloorToSecond(to_ms);
  if (from >= to) {
    return Status::Error("invalid_value",
                         fmt::format("price window for node '{}': [{}, {}) holds no whole second",
                                     Shown(node), from_ms, to_ms));
  }
  auto found = nodes_.find(node);
  if (found == nodes_.end()) {
    return Status::Error("unknown_node",
                         fmt::format("no price forecast for node '{}'", Shown(node)));
  }
  const std::map<int64_t, PriceSegment>& timeline = found->second;
  auto missing = [&](int64_t gap_from, int64_t gap_to) {
    return Status::Error(
        "prices_missing",
        fmt::format("prices for node '{}' missing from {} to {}, in the window [{}, {})",
                    Shown(node), Instant(gap_from), Instant(gap_to), from_ms, to_ms));
  };
  std::vector<PriceInterval> prices;
  auto it = timeline.lower_bound(from);
  if (it != timeline.begin() && std::prev(it)->second.end_ms > from) --it;
  int64_t cursor = from;
  for (; it != timeline.end() && it->second.start_ms < to; ++it) {
    const PriceSegment& segment = it->second;
    if (segment.start_ms > cursor) return missing(cursor, segment.start_ms);
    int64_t end = std::min(segment.end_ms, to);
    prices.push_back(PriceInterval{cursor, (end - cursor) / 1000, segment.price_per_mwh});
    cursor = end;
  }
  if (cursor < to) return missing(cursor, to);
  return prices;
}

std::vector<PriceSegment> PriceBook::Segments(const std::string& node) const {
  std::vector<PriceSegment> segments;
  auto found = nodes_.find(node);
  if (found == nodes_.end()) return segments;
  segments.reserve(found->second.size());
  for (const auto& entry : found->second) segments.push_back(entry.second);
  return segments;
}

std::vector<std::string> PriceBook::Nodes() const {
  std::vector<std::string> nodes;
  nodes.reserve(nodes_.size());
  for (const auto& entry : nodes_) nodes.push_back(entry.first);
  return nodes;
}

StatusOr<std::vector<PriceForecast>> ParsePriceCsv(const std::string& text,
                                                   const std::string& source) {
  auto error = [&source](size_t line, const std::string& detail) {
    return Status::Error("csv_error", fmt::format("{}:{}: {}", source, line, detail));
  };
  struct Row {
    PriceInterval interval;
    size_t line = 0;
  };
  // long_term sorts before short_term (see the header), hence the flag.
  using Key = std::tuple<std::string, int64_t, bool>;
  std::map<Key, std::vector<Row>> groups;

  std::string_view rest(text);
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);  // spreadsheets add a BOM
  bool header_seen = false;
  for (size_t line_no = 1; !rest.empty(); ++line_no) {
    size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view trimmed = Trim(line);
    if (trimmed.empty() || trimmed.front() == '#') continue;

    std::vector<std::string_view> fields = SplitFields(trimmed);
    if (!header_seen) {
      std::vector<std::string_view> expected = SplitFields(kCsvHeader);
      if (fields != expected) {
        return error(line_no,
                     fmt::format("header must be '{}', found '{}'", kCsvHeader, Shown(trimmed)));
      }
      header_seen = true;
      continue;
    }
    if (fields.size() != kCsvColumns) {
      return error(line_no,
                   fmt::format("expected {} columns, found {}", kCsvColumns, fields.size()));
    }
    auto bad = [&](std::string_view column, std::string_view value, const std::string& rule) {
      return error(line_no, fmt::format("column {} '{}' {}", column, Shown(value), rule));
    };
    std::string_view node = fields[0];
    if (!topics::IsValidId(node)) return bad("node", node, "does not match [A-Za-z0-9_-]{1,64}");
    int64_t issued_ms = 0;
    std::string rule = ParseInt(fields[1], &issued_ms);
    if (rule.empty()) rule = IssuedRule(issued_ms);
    if (!rule.empty()) return bad("issued_ms", fields[1], rule);
    bool short_term = fields[2] == "short_term";
    if (!short_term && fields[2] != "long_term") {
      return bad("kind", fields[2], "is not short_term or long_term");
    }
    Row row;
    row.line = line_no;
    rule = ParseInt(fields[3], &row.interval.start_ms);
    if (rule.empty()) rule = StartRule(row.interval.start_ms);
    if (!rule.empty()) return bad("start_ms", fields[3], rule);
    rule = ParseInt(fields[4], &row.interval.duration_s);
    if (rule.empty()) rule = DurationRule(row.interval.duration_s);
    if (!rule.empty()) return bad("duration_s", fields[4], rule);
    rule = ParseDouble(fields[5], &row.interval.price_per_mwh);
    if (rule.empty()) rule = PriceRule(row.interval.price_per_mwh);
    if (!rule.empty()) return bad("price_per_mwh", fields[5], rule);
    groups[Key(std::string(node), issued_ms, short_term)].push_back(row);
  }
  if (!header_seen) {
    return Status::Error("csv_error",
                         fmt::format("{}: no header line, expected '{}'", source, kCsvHeader));
  }

  std::vector<PriceForecast> forecasts;
  for (auto& [key, rows] : groups) {
    PriceForecast forecast;
    forecast.node = std::get<0>(key);
    forecast.issued_ms = std::get<1>(key);
    forecast.kind = std::get<2>(key) ? ForecastKind::kShortTerm : ForecastKind::kLongTerm;
    // Stable, so that of two rows starting together the later line is the
    // one reported.
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return a.interval.start_ms < b.interval.start_ms;
    });
    for (size_t i = 0; i < rows.size(); ++i) {
      if (i > 0 && rows[i].interval.start_ms < EndMs(rows[i - 1].interval)) {
        return error(
            rows[i].line,
            fmt::format("interval [{}, {}) overlaps line {}'s [{}, {}) in the forecast "
                        "for node '{}' issued_ms {} ({})",
                        rows[i].interval.start_ms, EndMs(rows[i].interval), rows[i - 1].line,
                        rows[i - 1].interval.start_ms, EndMs(rows[i - 1].interval), forecast.node,
                        forecast.issued_ms, KindName(forecast.kind)));
      }
      forecast.intervals.push_back(rows[i].interval);
    }
    // The row checks above already enforce every rule; this guards against
    // the two drifting apart.
    if (Status status = ValidateForecast(forecast); !status.ok()) {
      return Status::Error("csv_error", fmt::format("{}: {}", source, status.message()));
    }
    forecasts.push_back(std::move(forecast));
  }
  return forecasts;
}

}  // namespace derms::scheduling
