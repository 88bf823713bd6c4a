package config

// validateInflight checks the cap on FHIR requests in flight
// (server.max_inflight and its queue), the cap on open connections and
// the soft memory limit.
func (c *Config) validateInflight(add adder) {
	s := c.Server
	if s.MaxConnections < 0 {
		add("server.max_connections: %d must be 0 (no cap) or more", s.MaxConnections)
	}
	if s.MemoryLimitMiB < 0 {
		add("server.memory_limit_mib: %d must be 0 (no limit) or more", s.MemoryLimitMiB)
	}
	switch {
	case s.MaxInflight < 0:
		add("server.max_inflight: %d must be 0 (no cap) or more", s.MaxInflight)
	case s.MaxInflight == 0:
		return // no cap: the queue settings do not matter
	case s.MaxConnections > 0 && s.MaxConnections < s.MaxInflight:
		add("server.max_connections: %d is below server.max_inflight (%d), which it would make unreachable; raise it or set 0 (no cap)", s.MaxConnections, s.MaxInflight)
	}
	if s.InflightQueue < 0 {
		add("server.inflight_queue: %d must be 0 (refuse at once beyond server.max_inflight) or more", s.InflightQueue)
	}
	if s.InflightQueue > 0 {
		positive(add, "server.inflight_wait", s.InflightWait)
	}
}
