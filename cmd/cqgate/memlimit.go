package main

import (
	"github.com/sirupsen/logrus"
)

// applyMemoryLimit sets the Go runtime's soft memory limit from
// server.memory_limit_mib (0: leave it) through set
// (debug.SetMemoryLimit), unless GOMEMLIMIT is in the environment, which
// the runtime has applied already and which wins. It returns the limit
// it set in bytes, or 0.
func applyMemoryLimit(mib int64, lookup func(string) (string, bool), set func(int64) int64, log logrus.FieldLogger) int64 {
	if mib <= 0 {
		return 0
	}
	if v, ok := lookup("GOMEMLIMIT"); ok && v != "" {
		log.WithField("GOMEMLIMIT", v).Warn("cqgate: server.memory_limit_mib is ignored: GOMEMLIMIT is set in the environment")
		return 0
	}
	limit := mib << 20
	set(limit)
	log.WithField("memory_limit_mib", mib).Info("cqgate: Go soft memory limit set")
	return limit
}
