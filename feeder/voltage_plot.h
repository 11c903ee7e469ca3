// An SVG picture of a curtailment: every bus-phase's voltage by its distance
// from the source, per phase, before (hollow) and after (filled) the
// curtailment, with the limits; and below it each PV's curtailment ratio.
// Pure function; the caller writes the file.
#ifndef DERMS_FEEDER_VOLTAGE_PLOT_H_
#define DERMS_FEEDER_VOLTAGE_PLOT_H_

#include <string>

#include "feeder/curtailment.h"
#include "feeder/feeder_model.h"

namespace derms::feeder {

// `title` is printed at the top (plain text; escaped here).
std::string VoltageProfileSvg(const FeederModel& model, const CurtailmentRequest& request,
                              const CurtailmentResult& result, const std::string& title);

}  // namespace derms::feeder

#endif  // DERMS_FEEDER_VOLTAGE_PLOT_H_
