// Where the tests find the feeder data (the project's copy in data/, or
// $DERMS_FEEDER_DATA), and the published tap positions.
#ifndef DERMS_TESTS_FEEDER_FEEDER_DATA_H_
#define DERMS_TESTS_FEEDER_FEEDER_DATA_H_

#include <cstdlib>
#include <string>
#include <utility>

#include "feeder/dss_parser.h"

namespace derms::feeder::testing {

inline std::string DataDir() {
  const char* env = std::getenv("DERMS_FEEDER_DATA");
  return env ? env : DERMS_FEEDER_DATA_DIR;
}

inline StatusOr<FeederModel> LoadIeee123() {
  return ParseDssFile(DataDir() + "/ieee123/IEEE123Master.dss");
}

// The tap positions Kersting's published results assume.
inline constexpr std::pair<const char*, int> kPublishedTaps[] = {
    {"reg1a", 7}, {"reg2a", -1}, {"reg3a", 0}, {"reg3c", -1},
    {"reg4a", 8}, {"reg4b", 1},  {"reg4c", 5}};

}  // namespace derms::feeder::testing

#endif  // DERMS_TESTS_FEEDER_FEEDER_DATA_H_
