// Process-wide stop flag set by SIGINT and SIGTERM, for programs' main loops.
#ifndef DERMS_COMMON_SIGNALS_H_
#define DERMS_COMMON_SIGNALS_H_

#include <atomic>

namespace derms {

// Installs handlers for SIGINT and SIGTERM that set the returned flag.
// Call once, from main, before starting threads.
std::atomic<bool>& InstallStopSignals();
// Installs a handler for SIGHUP that sets the returned flag; the program
// clears it when it has reloaded.
std::atomic<bool>& InstallReloadSignal();

}  // namespace derms

#endif  // DERMS_COMMON_SIGNALS_H_
