#ifndef BANK_PROJECTOR_APP_H_
#define BANK_PROJECTOR_APP_H_

#include "projector/projector.h"

namespace bank::projector {

// Migrates the read database, checks the events database, then runs the
// projector (or, with rebuild, rebuilds the read model once and exits) until
// SIGINT or SIGTERM. Returns the exit code: 0 after a clean stop, 1 when a
// database cannot be reached at startup, 3 when a poison event stopped the
// projection. REQUIRES: util::BlockTerminationSignals() was called.
// `metrics_listen` (host:port, empty: off) serves /metrics and /healthz.
int RunProjector(const ProjectorOptions& options, bool rebuild,
                 const std::string& metrics_listen);

}  // namespace bank::projector

#endif  // BANK_PROJECTOR_APP_H_
