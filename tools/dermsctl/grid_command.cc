#include "tools/dermsctl/grid_command.h"

#include <memory>
#include <string>

#include "common/codec.h"
#include "common/topics.h"
#include "derms/v1/derms.pb.h"

namespace derms::dermsctl {
namespace {

constexpr char kCommand[] = "grid";

struct GridArgs {
  std::string substation;
  double load_kw = 0;
  double supply_kw = 0;
  double frequency_hz = 60;
  double voltage_pu = 1;
};

int Run(const GridArgs& a, const GlobalFlags& globals) {
  Status s = FirstError(
      {topics::ValidateId("--substation", a.substation), CheckFinite("--load-kw", a.load_kw),
       CheckFinite("--supply-kw", a.supply_kw), CheckFinite("--frequency-hz", a.frequency_hz),
       CheckFinite("--voltage-pu", a.voltage_pu)});
  if (!s.ok()) return Fail(kCommand, s.message(), kExitBadArgument);
  v1::GridStatus g;
  g.set_substation_id(a.substation);
  g.set_timestamp_ms(globals.NowMs());
  g.set_load_kw(a.load_kw);
  g.set_supply_kw(a.supply_kw);
  g.set_frequency_hz(a.frequency_hz);
  g.set_voltage_pu(a.voltage_pu);
  return PublishRequest(kCommand, globals.broker, topics::GridStatus(a.substation),
                        codec::ToJson(g), "", {});
}

}  // namespace

Subcommand AddGridCommand(CLI::App& app, const GlobalFlags& globals) {
  auto args = std::make_shared<GridArgs>();
  auto* cmd = app.add_subcommand(kCommand, "publish GridStatus on grid/{substation}/status");
  cmd->add_option("--substation", args->substation, "substation id")->required();
  cmd->add_option("--load-kw", args->load_kw, "demand to be served, kW")->required();
  cmd->add_option("--supply-kw", args->supply_kw, "supply available without DERs, kW")->required();
  cmd->add_option("--frequency-hz", args->frequency_hz, "default 60");
  cmd->add_option("--voltage-pu", args->voltage_pu, "default 1.0");
  return {cmd, [args, &globals] { return Run(*args, globals); }};
}

}  // namespace derms::dermsctl
