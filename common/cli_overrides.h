// Command-line flags that override a config file: declare each flag against
// the options field it sets, parse, load the file into the options, then
// Apply() writes only the flags that were given.
#ifndef DERMS_COMMON_CLI_OVERRIDES_H_
#define DERMS_COMMON_CLI_OVERRIDES_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "common/option_set.h"

namespace derms {

class CliOverrides {
 public:
  explicit CliOverrides(CLI::App* app) : app_(app) {}

  // Declares `name` (e.g. "--broker") as an override of `*field`.
  template <typename T>
  CLI::Option* Add(const std::string& name, T* field, const std::string& help) {
    auto holder = std::make_shared<T>(*field);
    CLI::Option* opt = app_->add_option(name, *holder, help);
    apply_.push_back([opt, holder, field] {
      if (opt->count() > 0) *field = *holder;
    });
    return opt;
  }

  // Declares the flag of each option of `set` that has one: its help is the
  // key's documentation and config key, its default the field's value now.
  void AddFlags(const config::OptionSet& set) {
    for (const auto& f : set.CliFlags()) {
      const std::string help = f.doc + " [config key " + f.key + "]";
      std::visit(
          [&](auto field) {
            if constexpr (!std::is_same_v<decltype(field), std::monostate>) {
              Add(f.flag, field, help)->capture_default_str();
            }
          },
          f.field);
    }
  }

  // Copies every flag that was given on the command line into its field.
  void Apply() const {
    for (const auto& f : apply_) f();
  }

 private:
  CLI::App* app_;
  std::vector<std::function<void()>> apply_;
};

// The simulated-time flags shared by every program that reads the clock.
struct ClockFlags {
  double time_scale = 1.0;
  int64_t time_anchor_ms = 0;
  int64_t time_start_ms = 0;

  void AddTo(CLI::App* app) {
    app->add_option("--time-scale", time_scale,
                    "simulated seconds per wall second (demos and tests), default 1")
        ->check(CLI::PositiveNumber);
    app->add_option("--time-anchor-ms", time_anchor_ms,
                    "wall time (ms since epoch) the simulated clock is anchored at; default now");
    app->add_option("--time-start-ms", time_start_ms,
                    "simulated time (ms since epoch) at the anchor; default the anchor itself. "
                    "Give the fleet and the aggregator the same three time flags.");
  }
  Clock Make() const { return Clock(time_scale, time_anchor_ms, time_start_ms); }
};

}  // namespace derms

#endif  // DERMS_COMMON_CLI_OVERRIDES_H_
