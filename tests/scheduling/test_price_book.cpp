// The price book: hand-worked merges (what a newer, older or equally old
// forecast does to the timeline), purging, windows, validation, the CSV
// format, and then random forecasts merged in random order checked minute by
// minute against a brute-force oracle (fixed seeds, so every run is the same).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cloud_aggregator/scheduling/price_book.h"

using Catch::Matchers::Contains;
using derms::Status;
using derms::scheduling::ForecastKind;
using derms::scheduling::MergeStats;
using derms::scheduling::ParsePriceCsv;
using derms::scheduling::PriceBook;
using derms::scheduling::PriceForecast;
using derms::scheduling::PriceInterval;
using derms::scheduling::PriceSegment;
using derms::scheduling::ValidateForecast;

namespace {

constexpr int64_t kMinuteMs = 60 * 1000;
constexpr int64_t kHourMs = 60 * kMinuteMs;
constexpr int64_t kDayMs = 24 * kHourMs;
// 2023-11-14T22:00:00Z: a whole hour, so minute offsets from it read as
// clock minutes in the messages.
constexpr int64_t kT0 = 1699999200000;
constexpr const char* kNode = "NODE-A";
constexpr const char* kSource = "prices.csv";

// The instant `minutes` after kT0.
int64_t Min(int64_t minutes) { return kT0 + minutes * kMinuteMs; }

// An interval of `minutes` minutes starting `start_min` minutes after kT0.
PriceInterval Interval(int64_t start_min, int64_t minutes, double price) {
  return PriceInterval{Min(start_min), minutes * 60, price};
}

PriceForecast Forecast(int64_t issued_ms, std::vector<PriceInterval> intervals,
                       ForecastKind kind = ForecastKind::kLongTerm,
                       const std::string& node = kNode) {
  PriceForecast forecast;
  forecast.node = node;
  forecast.issued_ms = issued_ms;
  forecast.kind = kind;
  forecast.intervals = std::move(intervals);
  return forecast;
}

MergeStats MergeValid(PriceBook& book, const PriceForecast& forecast) {
  Status status = ValidateForecast(forecast);
  INFO(status.ToString());
  REQUIRE(status.ok());
  return book.Merge(forecast);
}

// What a segment should be, in minutes after kT0.
struct Expected {
  int64_t start_min;
  int64_t end_min;
  double price;
  int64_t issued_ms;
};

std::string Show(const std::vector<PriceSegment>& segments) {
  std::ostringstream out;
  for (const PriceSegment& s : segments) {
    out << "[" << (s.start_ms - kT0) / kMinuteMs << ", " << (s.end_ms - kT0) / kMinuteMs
        << ") price " << s.price_per_mwh << " issued " << s.issued_ms << "\n";
  }
  return out.str();
}

void CheckTimeline(const PriceBook& book, const std::vector<Expected>& expected,
                   const std::string& node = kNode) {
  std::vector<PriceSegment> segments = book.Segments(node);
  INFO("timeline:\n" << Show(segments));
  REQUIRE(segments.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("segment " << i);
    CHECK(segments[i].start_ms == Min(expected[i].start_min));
    CHECK(segments[i].end_ms == Min(expected[i].end_min));
    CHECK(segments[i].price_per_mwh == expected[i].price);
    CHECK(segments[i].issued_ms == expected[i].issued_ms);
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Merging, worked by hand

TEST_CASE("a newer forecast overwrites the time it covers and adds new intervals",
          "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10), Interval(60, 60, 11)}));
  MergeStats stats = MergeValid(book, Forecast(2, {Interval(60, 60, 20), Interval(120, 60, 21)}));

  CheckTimeline(book, {{0, 60, 10, 1}, {60, 120, 20, 2}, {120, 180, 21, 2}});
  CHECK(stats.intervals_added == 2);
  CHECK(stats.intervals_ignored == 0);
  CHECK(stats.segments_replaced == 1);
}

TEST_CASE("an older forecast only fills the gaps a newer one leaves", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(5, {Interval(0, 15, 50), Interval(30, 15, 51)}));
  MergeStats stats = MergeValid(book, Forecast(1, {Interval(0, 60, 10)}));

  CheckTimeline(book, {{0, 15, 50, 5}, {15, 30, 10, 1}, {30, 45, 51, 5}, {45, 60, 10, 1}});
  CHECK(stats.intervals_added == 1);
  CHECK(stats.segments_replaced == 0);

  SECTION("an older interval wholly under newer ones is ignored") {
    MergeStats ignored = MergeValid(book, Forecast(2, {Interval(30, 15, 99)}));
    CHECK(ignored.intervals_added == 0);
    CHECK(ignored.intervals_ignored == 1);
    CheckTimeline(book, {{0, 15, 50, 5}, {15, 30, 10, 1}, {30, 45, 51, 5}, {45, 60, 10, 1}});
  }
}

TEST_CASE("older segments a newer interval partly overlaps are clipped, not dropped",
          "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10), Interval(60, 60, 11)}));
  MergeStats stats = MergeValid(book, Forecast(2, {Interval(30, 60, 20)}));

  CheckTimeline(book, {{0, 30, 10, 1}, {30, 90, 20, 2}, {90, 120, 11, 1}});
  CHECK(stats.segments_replaced == 2);
}

TEST_CASE("a newer interval strictly inside an older segment splits it in two",
          "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10)}));
  MergeStats stats = MergeValid(book, Forecast(2, {Interval(20, 20, 20)}));

  CheckTimeline(book, {{0, 20, 10, 1}, {20, 40, 20, 2}, {40, 60, 10, 1}});
  CHECK(stats.segments_replaced == 1);
}

TEST_CASE("a newer interval over several older segments removes them all", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 15, 1), Interval(15, 15, 2), Interval(30, 15, 3)}));
  MergeStats stats = MergeValid(book, Forecast(2, {Interval(0, 45, 20)}));

  CheckTimeline(book, {{0, 45, 20, 2}});
  CHECK(stats.segments_replaced == 3);
}

TEST_CASE("five-minute short-term prices replace only their minutes of a long-term hour",
          "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 40)}, ForecastKind::kLongTerm));
  MergeValid(book, Forecast(2, {Interval(10, 5, 30), Interval(15, 5, 31), Interval(20, 5, 32)},
                            ForecastKind::kShortTerm));

  CheckTimeline(
      book, {{0, 10, 40, 1}, {10, 15, 30, 2}, {15, 20, 31, 2}, {20, 25, 32, 2}, {25, 60, 40, 1}});
  std::vector<PriceSegment> segments = book.Segments(kNode);
  CHECK(segments.front().kind == ForecastKind::kLongTerm);
  CHECK(segments[1].kind == ForecastKind::kShortTerm);
  CHECK(segments.back().kind == ForecastKind::kLongTerm);

  SECTION("a later long-term forecast overwrites the short-term minutes too") {
    MergeValid(book, Forecast(3, {Interval(0, 60, 45)}, ForecastKind::kLongTerm));
    CheckTimeline(book, {{0, 60, 45, 3}});
  }
}

TEST_CASE("of two forecasts issued at the same time the one merged last wins",
          "[unit][price_book]") {
  PriceBook book;
  PriceForecast first = Forecast(5, {Interval(0, 60, 10)});
  PriceForecast second = Forecast(5, {Interval(30, 60, 20)});
  MergeValid(book, first);
  MergeValid(book, second);
  CheckTimeline(book, {{0, 30, 10, 5}, {30, 90, 20, 5}});

  MergeValid(book, first);
  CheckTimeline(book, {{0, 60, 10, 5}, {60, 90, 20, 5}});
}

TEST_CASE("adjacent segments at the same price stay separate", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10), Interval(60, 60, 10)}));
  MergeValid(book, Forecast(2, {Interval(120, 60, 10)}));
  CheckTimeline(book, {{0, 60, 10, 1}, {60, 120, 10, 1}, {120, 180, 10, 2}});
}

TEST_CASE("forecasts for different nodes do not touch each other", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10)}, ForecastKind::kLongTerm, "NODE-B"));
  MergeValid(book, Forecast(2, {Interval(0, 60, 20)}, ForecastKind::kLongTerm, "NODE-A"));

  CHECK(book.Nodes() == std::vector<std::string>{"NODE-A", "NODE-B"});
  CheckTimeline(book, {{0, 60, 10, 1}}, "NODE-B");
  CheckTimeline(book, {{0, 60, 20, 2}}, "NODE-A");
  CHECK(book.Segments("NODE-C").empty());
  CHECK_FALSE(book.HasNode("NODE-C"));
}

// ---------------------------------------------------------------------------
// Purging

TEST_CASE("purge removes a segment once its end is keep_past_ms old, not a millisecond before",
          "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10), Interval(60, 60, 11)}));
  int64_t first_end = Min(60);

  CHECK(book.Purge(first_end + kHourMs - 1, kHourMs) == 0);  // end == now - keep + 1
  CHECK(book.Segments(kNode).size() == 2);
  CHECK(book.Purge(first_end + kHourMs, kHourMs) == 1);  // end == now - keep
  CheckTimeline(book, {{60, 120, 11, 1}});
}

TEST_CASE("purge keeps by default one month of the past", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10)}));
  int64_t month_ms = 31 * kDayMs;

  CHECK(book.Purge(Min(60) + month_ms - 1) == 0);
  CHECK(book.Purge(Min(60) + month_ms) == 1);
}

TEST_CASE("purge keeps a segment that is only partly expired whole", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 120, 10)}));
  CHECK(book.Purge(Min(60), 0) == 0);
  CheckTimeline(book, {{0, 120, 10, 1}});
}

TEST_CASE("purge forgets a node whose every segment expired and keeps the others",
          "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10)}, ForecastKind::kLongTerm, "OLD"));
  MergeValid(book, Forecast(1, {Interval(0, 60, 10), Interval(120, 60, 12)},
                            ForecastKind::kLongTerm, "NEW"));

  CHECK(book.Purge(Min(60), 0) == 2);
  CHECK(book.Nodes() == std::vector<std::string>{"NEW"});
  auto window = book.Window("OLD", Min(0), Min(60));
  CHECK(window.status().code() == "unknown_node");
}

TEST_CASE("purge with an enormous keep_past_ms removes nothing", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10)}));
  CHECK(book.Purge(Min(120), std::numeric_limits<int64_t>::max()) == 0);
  CHECK(book.Segments(kNode).size() == 1);
}

// ---------------------------------------------------------------------------
// Windows

TEST_CASE("a window returns the prices clipped to its edges, in time order", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10), Interval(60, 60, 20), Interval(120, 60, 30)}));

  auto window = book.Window(kNode, Min(30), Min(150));
  INFO(window.status().ToString());
  REQUIRE(window.ok());
  REQUIRE(window->size() == 3);
  CHECK((*window)[0].start_ms == Min(30));
  CHECK((*window)[0].duration_s == 1800);
  CHECK((*window)[0].price_per_mwh == 10);
  CHECK((*window)[1].start_ms == Min(60));
  CHECK((*window)[1].duration_s == 3600);
  CHECK((*window)[1].price_per_mwh == 20);
  CHECK((*window)[2].start_ms == Min(120));
  CHECK((*window)[2].duration_s == 1800);
  CHECK((*window)[2].price_per_mwh == 30);

  SECTION("a window inside one segment is one clipped interval") {
    auto inner = book.Window(kNode, Min(70), Min(80));
    REQUIRE(inner.ok());
    REQUIRE(inner->size() == 1);
    CHECK((*inner)[0].start_ms == Min(70));
    CHECK((*inner)[0].duration_s == 600);
    CHECK((*inner)[0].price_per_mwh == 20);
  }
}

TEST_CASE("a window over a gap names the node and the first uncovered instant",
          "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10), Interval(90, 30, 20)}));

  auto window = book.Window(kNode, Min(0), Min(120));
  REQUIRE_FALSE(window.ok());
  CHECK(window.status().code() == "prices_missing");
  CHECK_THAT(window.status().message(), Contains("node 'NODE-A'"));
  CHECK_THAT(window.status().message(),
             Contains("missing from 1700002800000 (2023-11-14T23:00:00Z) to 1700004600000"));
}

TEST_CASE("a window reaching before the first or after the last price is missing prices",
          "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10)}));

  auto before = book.Window(kNode, Min(-30), Min(30));
  CHECK(before.status().code() == "prices_missing");
  CHECK_THAT(before.status().message(), Contains("from 1699997400000 (2023-11-14T21:30:00Z)"));

  auto after = book.Window(kNode, Min(30), Min(90));
  CHECK(after.status().code() == "prices_missing");
  CHECK_THAT(after.status().message(), Contains("from 1700002800000 (2023-11-14T23:00:00Z)"));
}

TEST_CASE("a window for a node without prices is unknown_node", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10)}));
  auto window = book.Window("NODE-Z", Min(0), Min(60));
  CHECK(window.status().code() == "unknown_node");
  CHECK_THAT(window.status().message(), Contains("'NODE-Z'"));
}

TEST_CASE("a window must start before it ends", "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10)}));
  for (int64_t to_min : {10, 5}) {
    auto window = book.Window(kNode, Min(10), Min(to_min));
    CHECK(window.status().code() == "invalid_value");
    CHECK_THAT(window.status().message(), Contains("is not before to_ms"));
  }
}

TEST_CASE("a window with millisecond edges narrows to the whole seconds inside it",
          "[unit][price_book]") {
  PriceBook book;
  MergeValid(book, Forecast(1, {Interval(0, 60, 10), Interval(60, 60, 20)}));

  auto window = book.Window(kNode, Min(0) + 500, Min(60) + 1500);
  REQUIRE(window.ok());
  REQUIRE(window->size() == 2);
  CHECK((*window)[0].start_ms == Min(0) + 1000);
  CHECK((*window)[0].duration_s == 3599);
  CHECK((*window)[1].start_ms == Min(60));
  CHECK((*window)[1].duration_s == 1);

  auto no_second = book.Window(kNode, Min(0) + 100, Min(0) + 900);
  CHECK(no_second.status().code() == "invalid_value");
  CHECK_THAT(no_second.status().message(), Contains("holds no whole second"));
}

// ---------------------------------------------------------------------------
// Validation

TEST_CASE("a well-formed forecast passes validation, edges of each range included",
          "[unit][price_book]") {
  PriceForecast forecast =
      Forecast(1, {PriceInterval{Min(0), 60, -100000}, PriceInterval{Min(1), 86400, 100000}});
  Status status = ValidateForecast(forecast);
  INFO(status.ToString());
  CHECK(status.ok());
}

TEST_CASE("validation names the forecast, the field and the rule it breaks", "[unit][price_book]") {
  struct Case {
    std::function<void(PriceForecast&)> mutate;
    std::string expected;
  };
  const double kNan = std::numeric_limits<double>::quiet_NaN();
  const double kInf = std::numeric_limits<double>::infinity();
  const std::vector<Case> cases = {
      {[](PriceForecast& f) { f.node = ""; }, "node '' does not match [A-Za-z0-9_-]{1,64}"},
      {[](PriceForecast& f) { f.node = "node a"; }, "node 'node a' does not match"},
      {[](PriceForecast& f) { f.node = std::string(65, 'n'); }, "does not match"},
      {[](PriceForecast& f) { f.issued_ms = 0; }, "issued_ms 0 must be > 0"},
      {[](PriceForecast& f) { f.intervals.clear(); }, "intervals is empty"},
      {[](PriceForecast& f) { f.intervals[1].start_ms = 0; },
       "intervals[1].start_ms 0 must be > 0"},
      {[](PriceForecast& f) { f.intervals[0].start_ms += 1; },
       "intervals[0].start_ms 1699999200001 is not a whole second"},
      {[](PriceForecast& f) { f.intervals[1].start_ms = 253402300800000; },
       "intervals[1].start_ms 253402300800000 is not before year 10000"},
      {[](PriceForecast& f) { f.intervals[1].duration_s = 59; },
       "intervals[1].duration_s 59 is outside [60, 86400]"},
      {[](PriceForecast& f) { f.intervals[1].duration_s = 86401; },
       "intervals[1].duration_s 86401 is outside [60, 86400]"},
      {[](PriceForecast& f) { f.intervals[1].duration_s = 0; },
       "intervals[1].duration_s 0 is outside"},
      {[kNan](PriceForecast& f) { f.intervals[0].price_per_mwh = kNan; },
       "intervals[0].price_per_mwh nan is not finite"},
      {[kInf](PriceForecast& f) { f.intervals[0].price_per_mwh = -kInf; },
       "intervals[0].price_per_mwh -inf is not finite"},
      {[](PriceForecast& f) { f.intervals[1].price_per_mwh = 100000.5; },
       "intervals[1].price_per_mwh 100000.5 is outside [-100000, 100000]"},
      {[](PriceForecast& f) { f.intervals[1].start_ms = Min(30); },
       "intervals[1].start_ms 1700001000000 is before the end 1700002800000 of intervals[0]: "
       "intervals must be in start order and not overlap"},
      {[](PriceForecast& f) { std::swap(f.intervals[0], f.intervals[1]); },
       "intervals must be in start order"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    PriceForecast forecast = Forecast(1700000000000, {Interval(0, 60, 10), Interval(60, 60, 20)});
    cases[i].mutate(forecast);
    Status status = ValidateForecast(forecast);
    INFO("case " << i << ": " << status.ToString());
    CHECK(status.code() == "invalid_field");
    CHECK_THAT(status.message(), Contains("price forecast for node '"));
    CHECK_THAT(status.message(), Contains(cases[i].expected));
  }
}

TEST_CASE("validation messages name the node and the issue time", "[unit][price_book]") {
  PriceForecast forecast = Forecast(1700000000000, {Interval(0, 60, 10)}, ForecastKind::kShortTerm);
  forecast.intervals[0].duration_s = 30;
  Status status = ValidateForecast(forecast);
  CHECK(status.message() ==
        "price forecast for node 'NODE-A' issued_ms 1700000000000 (short_term): "
        "intervals[0].duration_s 30 is outside [60, 86400]");
}

// ---------------------------------------------------------------------------
// CSV

namespace {

const std::string kHeader = "node,issued_ms,kind,start_ms,duration_s,price_per_mwh\n";

std::vector<PriceForecast> ParseOk(const std::string& text) {
  auto parsed = ParsePriceCsv(text, kSource);
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  return std::move(parsed).value();
}

}  // namespace

TEST_CASE("csv rows become one forecast per node, issue time and kind, intervals sorted",
          "[unit][price_book]") {
  std::vector<PriceForecast> forecasts =
      ParseOk(kHeader +
              "NODE-B,1700000000000,long_term,1700002800000,3600,55\n"
              "NODE-A,1700000000000,short_term,1699999500000,300,42.5\n"
              "NODE-A,1700000000000,short_term,1699999200000,300,41\n"
              "NODE-A,1700003600000,short_term,1699999200000,300,-3.25\n"
              "NODE-A,1700000000000,long_term,1699999200000,3600,4e1\n");

  REQUIRE(forecasts.size() == 4);
  CHECK(forecasts[0].node == "NODE-A");
  CHECK(forecasts[0].issued_ms == 1700000000000);
  CHECK(forecasts[0].kind == ForecastKind::kLongTerm);
  REQUIRE(forecasts[0].intervals.size() == 1);
  CHECK(forecasts[0].intervals[0].price_per_mwh == 40);

  CHECK(forecasts[1].node == "NODE-A");
  CHECK(forecasts[1].issued_ms == 1700000000000);
  CHECK(forecasts[1].kind == ForecastKind::kShortTerm);
  REQUIRE(forecasts[1].intervals.size() == 2);
  CHECK(forecasts[1].intervals[0].start_ms == 1699999200000);
  CHECK(forecasts[1].intervals[0].duration_s == 300);
  CHECK(forecasts[1].intervals[0].price_per_mwh == 41);
  CHECK(forecasts[1].intervals[1].start_ms == 1699999500000);
  CHECK(forecasts[1].intervals[1].price_per_mwh == 42.5);

  CHECK(forecasts[2].node == "NODE-A");
  CHECK(forecasts[2].issued_ms == 1700003600000);
  REQUIRE(forecasts[2].intervals.size() == 1);
  CHECK(forecasts[2].intervals[0].price_per_mwh == -3.25);

  CHECK(forecasts[3].node == "NODE-B");
  CHECK(forecasts[3].intervals[0].duration_s == 3600);
  for (const PriceForecast& forecast : forecasts) {
    Status status = ValidateForecast(forecast);
    CHECK(status.ok());
  }
}

TEST_CASE("csv forecasts merged in order let short-term win a tie with long-term",
          "[unit][price_book]") {
  PriceBook book;
  for (const PriceForecast& forecast :
       ParseOk(kHeader + "NODE-A,1700000000000,short_term,1699999200000,300,30\n"
                         "NODE-A,1700000000000,long_term,1699999200000,3600,40\n")) {
    book.Merge(forecast);
  }
  CheckTimeline(book, {{0, 5, 30, 1700000000000}, {5, 60, 40, 1700000000000}});
}

TEST_CASE("csv accepts CRLF, blank lines, comments, padding and a byte order mark",
          "[unit][price_book]") {
  std::vector<PriceForecast> forecasts = ParseOk(
      "\xEF\xBB\xBF# exported by the market feed\r\n"
      "\r\n"
      "  node , issued_ms ,kind,start_ms,duration_s,\tprice_per_mwh \r\n"
      "   # a comment after the header\r\n"
      " \t \r\n"
      " NODE-A , 1700000000000 , short_term , 1699999200000 , 300 , 41 \r\n"
      "NODE-A,1700000000000,short_term,1699999500000,300,42");  // no final line end

  REQUIRE(forecasts.size() == 1);
  REQUIRE(forecasts[0].intervals.size() == 2);
  CHECK(forecasts[0].node == "NODE-A");
  CHECK(forecasts[0].intervals[0].price_per_mwh == 41);
  CHECK(forecasts[0].intervals[1].price_per_mwh == 42);
}

TEST_CASE("a csv with only a header holds no forecasts", "[unit][price_book]") {
  CHECK(ParseOk(kHeader).empty());
}

TEST_CASE("csv errors name the source, the line, the column and the rule", "[unit][price_book]") {
  const std::string row_ok = "NODE-A,1700000000000,short_term,1699999200000,300,41\n";
  struct Case {
    std::string text;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"",
       "prices.csv: no header line, expected 'node,issued_ms,kind,start_ms,duration_s,"
       "price_per_mwh'"},
      {"# only a comment\n\n", "prices.csv: no header line"},
      {"node,issued,kind,start_ms,duration_s,price_per_mwh\n" + row_ok,
       "prices.csv:1: header must be 'node,issued_ms,kind,start_ms,duration_s,price_per_mwh', "
       "found 'node,issued,kind,start_ms,duration_s,price_per_mwh'"},
      {"# comment\n" + row_ok, "prices.csv:2: header must be"},
      {"issued_ms,node,kind,start_ms,duration_s,price_per_mwh\n", "prices.csv:1: header must be"},
      {kHeader + row_ok + "NODE-A,1700000000000,short_term,1699999500000,300\n",
       "prices.csv:3: expected 6 columns, found 5"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999500000,300,41,x\n",
       "prices.csv:2: expected 6 columns, found 7"},
      {kHeader + "NODE A,1700000000000,short_term,1699999200000,300,41\n",
       "prices.csv:2: column node 'NODE A' does not match [A-Za-z0-9_-]{1,64}"},
      {kHeader + ",1700000000000,short_term,1699999200000,300,41\n",
       "prices.csv:2: column node '' does not match"},
      {kHeader + "NODE-A,soon,short_term,1699999200000,300,41\n",
       "prices.csv:2: column issued_ms 'soon' is not an integer"},
      {kHeader + "NODE-A,0,short_term,1699999200000,300,41\n",
       "prices.csv:2: column issued_ms '0' must be > 0"},
      {kHeader + "NODE-A,99999999999999999999,short_term,1699999200000,300,41\n",
       "prices.csv:2: column issued_ms '99999999999999999999' is out of range for a 64-bit "
       "integer"},
      {kHeader + "NODE-A,1700000000000,spot,1699999200000,300,41\n",
       "prices.csv:2: column kind 'spot' is not short_term or long_term"},
      {kHeader + "NODE-A,1700000000000,Short_Term,1699999200000,300,41\n",
       "prices.csv:2: column kind 'Short_Term' is not short_term or long_term"},
      {kHeader + "NODE-A,1700000000000,short_term,1.7e12,300,41\n",
       "prices.csv:2: column start_ms '1.7e12' is not an integer"},
      {kHeader + "NODE-A,1700000000000,short_term,-5,300,41\n",
       "prices.csv:2: column start_ms '-5' must be > 0"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999200500,300,41\n",
       "prices.csv:2: column start_ms '1699999200500' is not a whole second"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999200000,300.0,41\n",
       "prices.csv:2: column duration_s '300.0' is not an integer"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999200000,30,41\n",
       "prices.csv:2: column duration_s '30' is outside [60, 86400]"},
      {kHeader + "# note\n\n" + row_ok + row_ok.substr(0, row_ok.size() - 3) + "x\n" + row_ok,
       "prices.csv:5: column price_per_mwh 'x' is not a number"},
      {kHeader + row_ok + "\n# three lines\n# before this one\n\n" +
           "NODE-A,1700000000000,short_term,1699999500000,300,abc\n",
       "prices.csv:7: column price_per_mwh 'abc' is not a number"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999200000,300,\n",
       "prices.csv:2: column price_per_mwh '' is not a number"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999200000,300,12abc\n",
       "prices.csv:2: column price_per_mwh '12abc' is not a number"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999200000,300,nan\n",
       "prices.csv:2: column price_per_mwh 'nan' is not finite"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999200000,300,1e6\n",
       "prices.csv:2: column price_per_mwh '1e6' is outside [-100000, 100000]"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999200000,300,1e400\n",
       "prices.csv:2: column price_per_mwh '1e400' is out of range"},
      {kHeader + "NODE-A,1700000000000,short_term,1699999500000,300,41\r\n" +
           "NODE-B,1700000000000,short_term,1699999200000,3600,41\r\n" +
           "NODE-A,1700000000000,short_term,1699999200000,600,41\r\n",
       "prices.csv:2: interval [1699999500000, 1699999800000) overlaps line 4's [1699999200000, "
       "1699999800000) in the forecast for node 'NODE-A' issued_ms 1700000000000 (short_term)"},
      {kHeader + row_ok + row_ok,
       "prices.csv:3: interval [1699999200000, 1699999500000) overlaps "
       "line 2's"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto parsed = ParsePriceCsv(cases[i].text, kSource);
    INFO("case " << i << ": " << parsed.status().ToString());
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == "csv_error");
    CHECK_THAT(parsed.status().message(), Contains(cases[i].expected));
  }
}

// ---------------------------------------------------------------------------
// Random forecasts against a brute-force oracle

namespace {

constexpr int64_t kHorizonMin = 2 * 24 * 60;

// The price the merge rules give one minute: that of the forecast with the
// greatest issue time among those covering it, the last merged on a tie.
struct OracleMinute {
  bool covered = false;
  double price = 0;
  int64_t issued_ms = 0;
  ForecastKind kind = ForecastKind::kShortTerm;
};

// Intervals on a 5, 15, 30 or 60 minute grid from a random minute, with
// random holes; issue times from a few hours so that ties are common.
PriceForecast RandomForecast(std::mt19937_64& rng, int index) {
  static constexpr int64_t kGrids[] = {5, 15, 30, 60};
  int64_t grid = kGrids[std::uniform_int_distribution<int>(0, 3)(rng)];
  int64_t count = std::uniform_int_distribution<int64_t>(1, 12)(rng);
  int64_t start = std::uniform_int_distribution<int64_t>(0, kHorizonMin - grid)(rng);
  PriceForecast forecast;
  forecast.node = kNode;
  forecast.issued_ms = kT0 + std::uniform_int_distribution<int64_t>(0, 6)(rng) * kHourMs;
  forecast.kind =
      std::bernoulli_distribution(0.5)(rng) ? ForecastKind::kShortTerm : ForecastKind::kLongTerm;
  std::bernoulli_distribution hole(0.2);
  for (int64_t i = 0; i < count && start + (i + 1) * grid <= kHorizonMin; ++i) {
    if (i > 0 && hole(rng)) continue;
    // Distinct prices, so taking a price from the wrong forecast shows.
    forecast.intervals.push_back(Interval(start + i * grid, grid, index * 100.0 + i + 0.25));
  }
  return forecast;
}

// Applies `forecast` to the oracle; returns how many of its intervals take
// at least one minute.
size_t ApplyToOracle(const PriceForecast& forecast, std::vector<OracleMinute>& oracle) {
  size_t took_effect = 0;
  for (const PriceInterval& interval : forecast.intervals) {
    bool took = false;
    int64_t first = (interval.start_ms - kT0) / kMinuteMs;
    for (int64_t m = first; m < first + interval.duration_s / 60; ++m) {
      OracleMinute& minute = oracle[m];
      if (minute.covered && minute.issued_ms > forecast.issued_ms) continue;
      minute = OracleMinute{true, interval.price_per_mwh, forecast.issued_ms, forecast.kind};
      took = true;
    }
    if (took) ++took_effect;
  }
  return took_effect;
}

void CheckAgainstOracle(const PriceBook& book, const std::vector<OracleMinute>& oracle) {
  std::vector<PriceSegment> segments = book.Segments(kNode);
  INFO("timeline:\n" << Show(segments));
  std::vector<OracleMinute> seen(kHorizonMin);
  for (size_t i = 0; i < segments.size(); ++i) {
    const PriceSegment& s = segments[i];
    REQUIRE(s.start_ms < s.end_ms);
    REQUIRE((s.start_ms - kT0) % kMinuteMs == 0);
    REQUIRE((s.end_ms - kT0) % kMinuteMs == 0);
    REQUIRE(s.start_ms >= kT0);
    REQUIRE(s.end_ms <= Min(kHorizonMin));
    if (i > 0) REQUIRE(segments[i - 1].end_ms <= s.start_ms);  // sorted, no overlap
    for (int64_t m = (s.start_ms - kT0) / kMinuteMs; m < (s.end_ms - kT0) / kMinuteMs; ++m) {
      seen[m] = OracleMinute{true, s.price_per_mwh, s.issued_ms, s.kind};
    }
  }
  // One assertion for the first wrong minute, not thousands of passing ones.
  int64_t m = 0;
  auto same = [](const OracleMinute& a, const OracleMinute& b) {
    return a.covered == b.covered &&
           (!a.covered || (a.price == b.price && a.issued_ms == b.issued_ms && a.kind == b.kind));
  };
  while (m < kHorizonMin && same(seen[m], oracle[m])) ++m;
  if (m == kHorizonMin) return;
  INFO("minute " << m);
  CHECK(seen[m].covered == oracle[m].covered);
  CHECK(seen[m].price == oracle[m].price);
  CHECK(seen[m].issued_ms == oracle[m].issued_ms);
  FAIL("the timeline differs from the oracle");
}

}  // namespace

TEST_CASE("random forecasts merged in random order match a minute-by-minute oracle",
          "[unit][price_book]") {
  std::mt19937_64 rng(20240611);
  for (int trial = 0; trial < 300; ++trial) {
    INFO("trial " << trial);
    int count = std::uniform_int_distribution<int>(1, 15)(rng);
    std::vector<PriceForecast> forecasts;
    for (int i = 0; i < count; ++i) forecasts.push_back(RandomForecast(rng, i));
    std::shuffle(forecasts.begin(), forecasts.end(), rng);

    PriceBook book;
    std::vector<OracleMinute> oracle(kHorizonMin);
    for (size_t k = 0; k < forecasts.size(); ++k) {
      INFO("after merging forecast " << k);
      size_t expected_added = ApplyToOracle(forecasts[k], oracle);
      MergeStats stats = MergeValid(book, forecasts[k]);
      CHECK(stats.intervals_added == expected_added);
      CHECK(stats.intervals_added + stats.intervals_ignored == forecasts[k].intervals.size());
      CheckAgainstOracle(book, oracle);
    }
  }
}

TEST_CASE("random windows over random timelines tile the window with the oracle's prices",
          "[unit][price_book]") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    INFO("trial " << trial);
    PriceBook book;
    std::vector<OracleMinute> oracle(kHorizonMin);
    int count = std::uniform_int_distribution<int>(1, 15)(rng);
    for (int i = 0; i < count; ++i) {
      PriceForecast forecast = RandomForecast(rng, i);
      ApplyToOracle(forecast, oracle);
      MergeValid(book, forecast);
    }
    for (int w = 0; w < 20; ++w) {
      int64_t from = std::uniform_int_distribution<int64_t>(0, kHorizonMin - 1)(rng);
      int64_t to = std::uniform_int_distribution<int64_t>(from + 1, kHorizonMin)(rng);
      INFO("window [" << from << ", " << to << ") minutes");
      int64_t first_gap = from;
      while (first_gap < to && oracle[first_gap].covered) ++first_gap;

      auto window = book.Window(kNode, Min(from), Min(to));
      if (first_gap < to) {
        CHECK(window.status().code() == "prices_missing");
        CHECK_THAT(window.status().message(),
                   Contains("missing from " + std::to_string(Min(first_gap)) + " ("));
        continue;
      }
      INFO(window.status().ToString());
      REQUIRE(window.ok());
      int64_t cursor = Min(from);
      for (const PriceInterval& interval : *window) {
        REQUIRE(interval.start_ms == cursor);
        REQUIRE(interval.duration_s > 0);
        cursor += interval.duration_s * 1000;
        for (int64_t m = (interval.start_ms - kT0) / kMinuteMs; m < (cursor - kT0) / kMinuteMs;
             ++m) {
          if (interval.price_per_mwh != oracle[m].price) {
            INFO("minute " << m);
            REQUIRE(interval.price_per_mwh == oracle[m].price);
          }
        }
      }
      CHECK(cursor == Min(to));
    }
  }
}
