package origin_test

import (
	"net/url"
	"testing"

	"github.com/cqgate/cqgate/internal/origin"
)

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", raw, err)
	}
	return u
}

func TestPort(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"https://a.test/x", "443"},
		{"HTTPS://a.test", "443"},
		{"http://a.test", "80"},
		{"https://a.test:8443", "8443"},
		{"http://a.test:443", "443"},
		{"https://[::1]/", "443"},
		{"https://[::1]:9443/", "9443"},
		{"https://a.test:/", "443"},
		{"ftp://a.test", ""},
		{"ftp://a.test:21", "21"},
	}
	for _, tt := range tests {
		if got := origin.Port(mustParse(t, tt.url)); got != tt.want {
			t.Errorf("Port(%s) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestSameAndOf(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"identical", "https://a.test/x", "https://a.test/y?q", true},
		{"host case", "https://Directory.Example.test/fhir", "https://directory.example.test/fhir", true},
		{"scheme case", "HTTPS://A.TEST/", "https://a.test", true},
		{"explicit default https port", "https://a.test:443/fhir", "https://a.test/fhir", true},
		{"explicit default http port", "http://d.test:80/fhir", "http://d.test/fhir", true},
		{"empty port is the default", "https://a.test:/", "https://a.test/", true},
		{"IPv6 default port", "https://[::1]/", "https://[::1]:443/x", true},
		{"other scheme", "http://a.test", "https://a.test", false},
		{"https on port 80", "https://a.test:80", "http://a.test", false},
		{"other port", "https://a.test:8443", "https://a.test", false},
		{"other IP port", "https://127.0.0.1:8443", "https://127.0.0.1:9443", false},
		{"leading zero port is not folded", "https://a.test:0443", "https://a.test", false},
		{"suffix host", "https://a.test.evil/", "https://a.test/", false},
		{"host in path", "https://evil.test/a.test", "https://a.test/", false},
		{"userinfo is not the host", "https://a.test@evil.test/x", "https://a.test/x", false},
		{"subdomain", "https://auth.a.test/", "https://a.test/", false},
		{"IPv6 other host", "https://[::1]/", "https://[::2]/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := mustParse(t, tt.a), mustParse(t, tt.b)
			if got := origin.Same(a, b); got != tt.same {
				t.Errorf("Same(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.same)
			}
			if got := origin.Same(b, a); got != tt.same {
				t.Errorf("Same(%s, %s) = %v, want %v (not symmetric)", tt.b, tt.a, got, tt.same)
			}
			if got := origin.Of(a) == origin.Of(b); got != tt.same {
				t.Errorf("Of(%s) = %q, Of(%s) = %q: equal %v, Same says %v", tt.a, origin.Of(a), tt.b, origin.Of(b), got, tt.same)
			}
		})
	}
}

func TestOf(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"https://Auth.Example.COM/token?x#y", "https://auth.example.com"},
		{"HTTP://a.test:80/", "http://a.test"},
		{"https://a.test:443", "https://a.test"},
		{"http://127.0.0.1:8443/x", "http://127.0.0.1:8443"},
		{"https://[2001:DB8::1]:443/", "https://[2001:db8::1]"},
		{"https://[2001:db8::1]:8443/", "https://[2001:db8::1]:8443"},
		{"https://a.test:80", "https://a.test:80"},
	}
	for _, tt := range tests {
		if got := origin.Of(mustParse(t, tt.url)); got != tt.want {
			t.Errorf("Of(%s) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
