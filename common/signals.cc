#include "common/signals.h"

#include <csignal>

namespace derms {
namespace {
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
extern "C" void OnStopSignal(int) { g_stop = true; }
extern "C" void OnReloadSignal(int) { g_reload = true; }
}  // namespace

std::atomic<bool>& InstallStopSignals() {
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  return g_stop;
}

std::atomic<bool>& InstallReloadSignal() {
  std::signal(SIGHUP, OnReloadSignal);
  return g_reload;
}

}  // namespace derms
