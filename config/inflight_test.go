package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateInflight(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(s *Server)
		wants []string // problem prefixes; none: valid
	}{
		{name: "defaults", edit: func(s *Server) {}},
		{name: "no cap", edit: func(s *Server) { s.MaxInflight, s.InflightQueue, s.InflightWait = 0, -1, 0 }},
		{name: "no queue needs no wait", edit: func(s *Server) { s.InflightQueue, s.InflightWait = 0, 0 }},
		{name: "negative cap", edit: func(s *Server) { s.MaxInflight = -1 }, wants: []string{"server.max_inflight:"}},
		{name: "negative queue", edit: func(s *Server) { s.InflightQueue = -5 }, wants: []string{"server.inflight_queue:"}},
		{name: "queue without wait", edit: func(s *Server) { s.InflightWait = 0 }, wants: []string{"server.inflight_wait:"}},
		{name: "negative wait", edit: func(s *Server) { s.InflightWait = -time.Second }, wants: []string{"server.inflight_wait:"}},
		{name: "no connection cap", edit: func(s *Server) { s.MaxConnections = 0 }},
		{name: "connection cap at max_inflight", edit: func(s *Server) { s.MaxConnections = s.MaxInflight }},
		{name: "negative connection cap", edit: func(s *Server) { s.MaxConnections = -1 }, wants: []string{"server.max_connections:"}},
		{name: "connection cap below max_inflight", edit: func(s *Server) { s.MaxConnections = s.MaxInflight - 1 }, wants: []string{"server.max_connections:"}},
		{name: "connection cap without an inflight cap", edit: func(s *Server) { s.MaxInflight, s.MaxConnections = 0, 8 }},
		{name: "every problem at once", edit: func(s *Server) { s.MaxConnections, s.InflightQueue = -1, -1 }, wants: []string{"server.max_connections:", "server.inflight_queue:"}},
		{name: "memory limit", edit: func(s *Server) { s.MemoryLimitMiB = 96 }},
		{name: "negative memory limit", edit: func(s *Server) { s.MemoryLimitMiB = -1 }, wants: []string{"server.memory_limit_mib:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c.Server)
			err := c.Validate()
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want a problem, got none")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), "- "+w) {
					t.Errorf("no problem starting %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestInflightDefaultsAndEnv(t *testing.T) {
	s := Default().Server
	if s.MaxInflight != 256 || s.InflightQueue != 1024 || s.InflightWait != 5*time.Second || s.MaxConnections != 512 {
		t.Errorf("defaults %d / %d / %s, %d connections", s.MaxInflight, s.InflightQueue, s.InflightWait, s.MaxConnections)
	}
	// A burst for one partner opens at most 64 connections to its host
	// (each ~30 KiB with its two goroutines and buffers); the rest wait
	// for one in the transport.
	if p := Default().Proxy; p.MaxConnsPerHost != 64 || p.MaxIdleConnsPerHost > p.MaxConnsPerHost {
		t.Errorf("proxy connection defaults %d / %d idle", p.MaxConnsPerHost, p.MaxIdleConnsPerHost)
	}
	c := Default()
	env := map[string]string{"CQGATE_SERVER_MAX_INFLIGHT": "64", "CQGATE_SERVER_INFLIGHT_QUEUE": "0", "CQGATE_SERVER_INFLIGHT_WAIT": "250ms", "CQGATE_SERVER_MAX_CONNECTIONS": "0"}
	if err := ApplyEnv(c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Server.MaxInflight != 64 || c.Server.InflightQueue != 0 || c.Server.InflightWait != 250*time.Millisecond || c.Server.MaxConnections != 0 {
		t.Errorf("after env: %+v", c.Server)
	}
}
