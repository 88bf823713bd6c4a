package proxy

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: ""},
		{in: "/", want: ""},
		{in: "/Patient/1316024", want: "/Patient/1316024"},
		{in: "/Patient", want: "/Patient"},
		{in: "/Patient/", want: "/Patient/"},
		{in: "/metadata", want: "/metadata"},
		{in: "/Patient/$everything", want: "/Patient/$everything"},
		{in: "/Binary/abc%20def", want: "/Binary/abc%20def"},
		{in: "/Patient/../Admin", bad: true},
		{in: "/Patient/..", bad: true},
		{in: "/./Patient", bad: true},
		{in: "/Patient/%2e%2e/x", bad: true},
		{in: "/Patient/%2E%2e", bad: true},
		{in: "/Patient/a%2fb", bad: true},
		{in: "/Patient/a%5Cb", bad: true},
		{in: "/Patient//1", bad: true},
		{in: "//evil.example/x", bad: true},
		{in: "/Patient/%0d%0aX-Injected:1", bad: true},
		{in: "/Patient/%00", bad: true},
		{in: "/Patient/..;/admin", bad: true},
		{in: "/Patient/..;jsessionid=1/admin", bad: true},
		{in: "/Patient/%2e%2e;x=1/admin", bad: true},
		{in: "/.;/Patient", bad: true},
		{in: "/Patient/.../admin", bad: true},
		{in: "/Patient/..%20/admin", bad: true},
		{in: "/Patient/.%20./admin", bad: true},
		{in: "/Patient/%c0%ae%c0%ae/admin", bad: true},
		{in: "/Patient/%ff", bad: true},
		{in: "/Patient/1;version=2", want: "/Patient/1;version=2"},
		{in: "/Patient/1.2", want: "/Patient/1.2"},
		{in: "/Binary/a..b", want: "/Binary/a..b"},
		{in: "/Patient/%C3%A9", want: "/Patient/%C3%A9"},
		{in: "/Patient/%zz", bad: true},
		{in: "Patient", bad: true},
		{in: "/" + strings.Repeat("a", 3000), bad: true},
	}
	for _, tt := range tests {
		got, err := ParsePath(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrBadPath) {
				t.Errorf("ParsePath(%q) = %q, %v; want ErrBadPath", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
