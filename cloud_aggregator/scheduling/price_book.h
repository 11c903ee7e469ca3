// Wholesale price forecasts per pricing node, merged into one
// piecewise-constant price timeline per node. Pure logic.
//
// Merge rules: a forecast overwrites, for the time it covers, whatever older
// forecasts (earlier issue time) said; time it does not cover keeps the older
// prices, so a partly covered older interval is clipped, not dropped. A
// forecast never overwrites a newer one: it only fills time the newer one
// leaves uncovered. New intervals are added. Purge drops whatever ends more
// than `keep_past_ms` (one month by default) before now.
// Not thread-safe.
#ifndef DERMS_CLOUD_AGGREGATOR_SCHEDULING_PRICE_BOOK_H_
#define DERMS_CLOUD_AGGREGATOR_SCHEDULING_PRICE_BOOK_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace derms::scheduling {

enum class ForecastKind { kShortTerm, kLongTerm };

struct PriceInterval {
  int64_t start_ms = 0;
  int64_t duration_s = 0;
  double price_per_mwh = 0;  // may be negative
};

struct PriceForecast {
  std::string node;  // pricing node, [A-Za-z0-9_-]{1,64}
  int64_t issued_ms = 0;
  ForecastKind kind = ForecastKind::kShortTerm;
  std::vector<PriceInterval> intervals;
};

// A stretch of the merged timeline: [start_ms, end_ms) at one price, from the
// forecast issued at `issued_ms`.
struct PriceSegment {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  double price_per_mwh = 0;
  int64_t issued_ms = 0;
  ForecastKind kind = ForecastKind::kShortTerm;
};

// Ok, or "invalid_field" naming the forecast, the field (with the interval's
// index) and the rule: node id, issued_ms > 0, at least one interval,
// duration_s in [60, 86400], start_ms > 0, a whole second (so every edge of
// the merged timeline is one) and before year 10000, finite price within
// +-100000 per MWh, intervals in start order and not overlapping.
[[nodiscard]] Status ValidateForecast(const PriceForecast& forecast);

struct MergeStats {
  size_t intervals_added = 0;    // intervals of the forecast that took effect, wholly or in part
  size_t intervals_ignored = 0;  // wholly under newer forecasts
  // Older (or equally old) segments removed or clipped, counted per interval:
  // a segment clipped by two intervals counts twice.
  size_t segments_replaced = 0;
};

class PriceBook {
 public:
  // For each interval [s, e): time held by segments issued at or before the
  // forecast takes its price (an equal issue time loses to the forecast
  // merged later); time held by newer segments keeps them. Adjacent segments
  // are never joined, so each keeps its provenance.
  // REQUIRES: ValidateForecast(forecast).ok().
  MergeStats Merge(const PriceForecast& forecast);
  // Removes what ends at or before now_ms - keep_past_ms; returns how many
  // segments. A segment only partly that old stays whole. A node left with
  // no segments is dropped (HasNode false, Window "unknown_node").
  size_t Purge(int64_t now_ms, int64_t keep_past_ms = 31LL * 24 * 3600 * 1000);

  // The node's prices over [from_ms, to_ms), as intervals clipped to the
  // window, in time order, tiling it. Intervals have whole-second durations,
  // so the window is first narrowed to the whole seconds inside it. Error
  // "prices_missing" naming the node and the first uncovered time (ms and
  // ISO-8601 UTC) when the timeline has a gap in the window, "unknown_node",
  // or "invalid_value" when from_ms is not before to_ms or no whole second
  // lies between them.
  StatusOr<std::vector<PriceInterval>> Window(const std::string& node, int64_t from_ms,
                                              int64_t to_ms) const;

  bool HasNode(const std::string& node) const { return nodes_.count(node) > 0; }
  // The node's whole timeline (for storage and tests), in time order.
  std::vector<PriceSegment> Segments(const std::string& node) const;
  std::vector<std::string> Nodes() const;

 private:
  std::map<std::string, std::map<int64_t, PriceSegment>> nodes_;  // node -> start_ms -> segment
};

// Reads a CSV file's text of price intervals, the format `dermsctl prices
// import` documents:
//   node,issued_ms,kind,start_ms,duration_s,price_per_mwh
//   NODE-A,1700000000000,short_term,1700000300000,300,42.5
// A header line is required; kind is short_term or long_term; rows may mix
// nodes and issue times: one forecast per (node, issued_ms, kind), rows in
// any order. Fields are trimmed of spaces and tabs and never quoted; CRLF
// line ends, a UTF-8 byte order mark, blank lines and lines starting with
// '#' are accepted. Every forecast passes ValidateForecast. They come sorted
// by node, then issue time, then long_term before short_term, so merging
// them in order lets a short-term forecast win a tie with a long-term one.
// Errors are "csv_error" naming `source`, the line, the column and the rule,
// e.g. "prices.csv:7: column price_per_mwh 'abc' is not a number"; a text
// with only a header yields no forecasts.
StatusOr<std::vector<PriceForecast>> ParsePriceCsv(const std::string& text,
                                                   const std::string& source);

}  // namespace derms::scheduling

#endif  // DERMS_CLOUD_AGGREGATOR_SCHEDULING_PRICE_BOOK_H_
