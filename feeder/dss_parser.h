// Reads a radial feeder from OpenDSS script files into a FeederModel.
//
// What is understood (what the IEEE test feeders use): `New`/`~`/`more`
// commands for circuit, linecode (rmatrix/xmatrix/cmatrix or r1/x1/r0/x0/
// c1/c0, units), line (bus1/bus2 with node suffixes, phases, linecode,
// length, units, switch-style r1/x1), transformer (buses=[..] or wdg=/bus=,
// conns, kvs, kvas, xhl, %r, like=), regcontrol (only its transformer link),
// load (conn, model 1/2/5, kv, kw, kvar), capacitor (bus1, phases, kvar, kv);
// `Redirect`/`Compile` relative to the including file; `Set`, `Clear`,
// `CalcVoltageBases` and `BusCoords` are accepted and ignored. Comments start
// with `!` or `//`; names and keys are case-insensitive; CRLF is accepted.
//
// Normally-open switches are dropped: lines named in
// ParseOptions::open_lines and lines to a bus whose name ends in `_open`.
//
// Every error names the file, the line and the property, e.g.
// "IEEE123Loads.DSS:12: load.s1a: kw 'x': not a number".
#ifndef DERMS_FEEDER_DSS_PARSER_H_
#define DERMS_FEEDER_DSS_PARSER_H_

#include <string>
#include <vector>

#include "common/status.h"
#include "feeder/feeder_model.h"

namespace derms::feeder {

struct ParseOptions {
  // Lines (OpenDSS names, lower case, without "line.") that are open.
  std::vector<std::string> open_lines = {"sw7", "sw8"};
};

// Parses `master_path` (e.g. ".../IEEE123Master.dss") and the files it
// redirects to, and builds the radial tree from the circuit's source bus.
// Errors: a file that cannot be read, a syntax or property error (file:line:
// element: property), a bus not reached from the source, a loop.
[[nodiscard]] StatusOr<FeederModel> ParseDssFile(const std::string& master_path,
                                                 const ParseOptions& options = {});

// The same from text (tests); `file_name` is used in error messages and as
// the directory that `Redirect` is relative to (none when empty).
[[nodiscard]] StatusOr<FeederModel> ParseDssText(const std::string& text,
                                                 const std::string& file_name,
                                                 const ParseOptions& options = {});

// Finds the master file in a feeder directory: the only `*Master*.dss`
// (case-insensitive), else an error naming the directory.
[[nodiscard]] StatusOr<std::string> FindMasterFile(const std::string& dir);

}  // namespace derms::feeder

#endif  // DERMS_FEEDER_DSS_PARSER_H_
