package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFrom(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/cqgate/cqgate", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc123"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name                  string
		bi                    *debug.BuildInfo
		ok                    bool
		ldVersion, ldRevision string
		want                  Info
	}{
		{"from build info", bi, true, "", "", Info{Version: "v1.2.3", Revision: "abc123-dirty", Time: "2026-01-02T03:04:05Z", GoVersion: "go1.26.0"}},
		{"ldflags win", bi, true, "v9.9.9", "fff", Info{Version: "v9.9.9", Revision: "fff", Time: "2026-01-02T03:04:05Z", GoVersion: "go1.26.0"}},
		{"no build info", nil, false, "", "", Info{Version: "(devel)", Revision: "unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version, revision = tt.ldVersion, tt.ldRevision
			defer func() { version, revision = "", "" }()
			got := from(tt.bi, tt.ok)
			if tt.want.GoVersion == "" {
				if got.GoVersion == "" {
					t.Errorf("GoVersion is empty; want the runtime's")
				}
				tt.want.GoVersion = got.GoVersion
			}
			if got != tt.want {
				t.Errorf("from() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
