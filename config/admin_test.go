package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestValidateAdmin(t *testing.T) {
	tests := []struct {
		name    string
		listen  string
		admin   Admin
		wantErr string // "" for none
	}{
		{"off", "127.0.0.1:8080", Admin{}, ""},
		{"own port", "127.0.0.1:8080", Admin{Listen: "0.0.0.0:9090", Pprof: true}, ""},
		{"both on any free port", "127.0.0.1:0", Admin{Listen: "127.0.0.1:0"}, ""},
		{"pprof without admin listener", "127.0.0.1:8080", Admin{Pprof: true}, "admin.pprof: needs admin.listen"},
		{"not host:port", "127.0.0.1:8080", Admin{Listen: "9090"}, "admin.listen: \"9090\" is not host:port"},
		{"same as listen", "127.0.0.1:8080", Admin{Listen: "127.0.0.1:8080"}, "would bind the same port"},
		{"the port of a loopback listen, on every address", "127.0.0.1:9090", Admin{Listen: "0.0.0.0:9090"}, "would bind the same port"},
		{"IPv6 loopback and any", "[::1]:9090", Admin{Listen: "[::]:9090"}, "would bind the same port"},
		{"no host and any", ":8080", Admin{Listen: "0.0.0.0:8080"}, "would bind the same port"},
		{"one port on two hosts", "127.0.0.1:9090", Admin{Listen: "127.0.0.2:9090"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Listen, c.Admin = tt.listen, tt.admin
			var got []string
			c.validateAdmin(func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) })
			switch {
			case tt.wantErr == "" && len(got) > 0:
				t.Errorf("unexpected problems %q", got)
			case tt.wantErr != "" && (len(got) != 1 || !strings.Contains(got[0], tt.wantErr)):
				t.Errorf("problems %q, want one containing %q", got, tt.wantErr)
			}
		})
	}
	if names := strings.Join(EnvNames(), " "); !strings.Contains(names, "CQGATE_ADMIN_LISTEN") || !strings.Contains(names, "CQGATE_ADMIN_PPROF") {
		t.Errorf("admin keys have no environment variables: %s", names)
	}
}
