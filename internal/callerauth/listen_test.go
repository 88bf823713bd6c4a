package callerauth_test

import (
	"strings"
	"testing"

	"github.com/cqgate/cqgate/internal/callerauth"
)

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr  string
		auth  string
		force bool
		want  string // "" for no error, else a substring of the error
	}{
		{addr: "127.0.0.1:8080", auth: "none"},
		{addr: "127.0.0.2:80", auth: "none"},
		{addr: "127.255.255.254:1", auth: "none"},
		{addr: "[::1]:80", auth: "none"},
		{addr: "[::1%lo]:80", auth: "none"},
		{addr: "[::ffff:127.0.0.1]:80", auth: "none"},
		{addr: "localhost:8080", auth: "none"},
		{addr: "LOCALHOST:8080", auth: "none"},
		{addr: ":8080", auth: "none", want: "listens on every interface"},
		{addr: "0.0.0.0:8080", auth: "none", want: "listens on every interface"},
		{addr: "[::]:8080", auth: "none", want: "listens on every interface"},
		{addr: "10.0.0.5:8080", auth: "none", want: "is not a loopback address"},
		{addr: "128.0.0.1:8080", auth: "none", want: "is not a loopback address"},
		{addr: "cqgate.internal:8080", auth: "none", want: "is not a loopback address"},
		{addr: "localhost.evil.example:8080", auth: "none", want: "is not a loopback address"},
		{addr: ":8080", auth: "none", force: true},
		{addr: "0.0.0.0:8080", auth: "none", force: true},
		{addr: ":8080", auth: "api_key"},
		{addr: "[::]:8443", auth: "mtls"},
		{addr: ":8080", auth: "basic", want: `inbound auth "basic"`},
		{addr: "", auth: "none", want: "listen address"},
		{addr: "127.0.0.1", auth: "none", want: "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.auth+"@"+tt.addr, func(t *testing.T) {
			err := callerauth.CheckListen(tt.addr, tt.auth, tt.force)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckListen: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if tt.auth == "none" && strings.Contains(tt.want, "interface") && !strings.Contains(err.Error(), "allow_unauthenticated") {
				t.Errorf("err = %v, want it to say how to override", err)
			}
		})
	}
}
