// A radial distribution feeder as the power flow and the curtailment solver
// see it: buses with their phases, branches (lines, switches, regulators,
// transformers) with full phase impedance matrices, loads, capacitors and
// PV. Built by dss_parser.h from an OpenDSS model; plain data, no I/O.
//
// Phases are numbered 0, 1, 2 inside the model (OpenDSS nodes 1, 2, 3).
// Quantities are per unit on a 1 MVA three-phase base and each bus's own
// line-to-neutral voltage base (kPerPhaseBaseKva per phase).
#ifndef DERMS_FEEDER_FEEDER_MODEL_H_
#define DERMS_FEEDER_FEEDER_MODEL_H_

#include <array>
#include <complex>
#include <string>
#include <vector>

namespace derms::feeder {

using Complex = std::complex<double>;
using Mat3 = std::array<std::array<Complex, 3>, 3>;
using PhaseSet = std::array<bool, 3>;

inline constexpr double kBaseKva = 1000.0;                // three-phase system base
inline constexpr double kPerPhaseBaseKva = kBaseKva / 3;  // what 1 pu of phase power is
inline constexpr double kTapStepPu = 0.00625;             // regulator step (5/8 %)

struct Bus {
  std::string name;         // lower case, as in the model ("150r")
  double base_kv_ll = 0;    // line-to-line base (4.16 or 0.48)
  PhaseSet phases{};        // phases present
  int parent_branch = -1;   // branch feeding it; -1 for the source bus
  double distance_kft = 0;  // line length from the source along the tree
};

enum class BranchKind { kLine, kSwitch, kRegulator, kTransformer };

struct Branch {
  std::string name;  // "line.l115", "transformer.reg1a", "bank reg4"
  BranchKind kind = BranchKind::kLine;
  int from_bus = -1;  // upstream (towards the source) once the tree is built
  int to_bus = -1;
  PhaseSet phases{};
  Mat3 z_pu{};       // series impedance, phase frame (zero for regulators)
  Mat3 y_half_pu{};  // shunt admittance at each end (line charging / 2)
  double length_kft = 0;
  // Regulators: each phase's controlling OpenDSS transformer ("reg4b") and tap
  // step; V_to = (1 + kTapStepPu * tap) V_from, I_from = (1 + ...) I_to.
  std::array<std::string, 3> regulator{};
  std::array<int, 3> tap{};
  double Ratio(int phase) const { return 1.0 + kTapStepPu * tap[phase]; }
};

enum class Connection { kWye, kDelta };
// OpenDSS load models: 1 constant PQ, 2 constant impedance, 5 constant |I|.
enum class LoadModel { kConstantPower = 1, kConstantImpedance = 2, kConstantCurrent = 5 };

// One phase-to-neutral (wye) or phase-to-phase (delta) part of a load; a
// three-phase load is three parts with a third of its power each.
struct LoadPart {
  std::string load;  // OpenDSS name ("s47")
  int bus = -1;
  Connection connection = Connection::kWye;
  int phase = 0;   // wye: the phase; delta: the first of the pair
  int phase2 = 0;  // delta: the second of the pair (phase -> phase2)
  LoadModel model = LoadModel::kConstantPower;
  double kw = 0, kvar = 0;  // nominal, at rated voltage
  double rated_pu = 1.0;    // rated voltage across the part, pu of the bus's LN base
};

struct Capacitor {
  std::string name;
  int bus = -1;
  int phase = 0;
  double kvar = 0;  // this phase's part, at rated voltage
  double rated_pu = 1.0;
};

// A PV inverter at unity power factor on one phase (wye).
struct Pv {
  std::string id;  // "pv-s1a", "pv-s47-2"
  int bus = -1;
  int phase = 0;
  double rated_kw = 0;
  std::string area;  // group for the per-area fairness policy
};

struct FeederModel {
  std::string name;
  std::vector<Bus> buses;        // buses[0] is the source bus
  std::vector<Branch> branches;  // in breadth-first order from the source
  std::vector<LoadPart> loads;
  std::vector<Capacitor> capacitors;
  std::vector<Pv> pvs;
  double source_pu = 1.0;

  // Index of bus `name` (case-insensitive), or -1.
  int FindBus(const std::string& name) const;
  // Sets a regulator's tap by OpenDSS transformer name ("reg4b"); false when
  // there is none.
  bool SetTap(const std::string& regulator, int tap);
  // Every regulator phase as (name, tap), in model order.
  std::vector<std::pair<std::string, int>> Taps() const;
};

}  // namespace derms::feeder

#endif  // DERMS_FEEDER_FEEDER_MODEL_H_
