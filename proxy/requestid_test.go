package proxy

import (
	"regexp"
	"testing"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRequestIDIsAUniqueUUID(t *testing.T) {
	seen := make(map[string]bool)
	for range 20000 {
		id := RequestID("")
		if !uuidV4.MatchString(id) {
			t.Fatalf("RequestID = %q, not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("RequestID repeated %q", id)
		}
		seen[id] = true
	}
	if n := testing.AllocsPerRun(100, func() { _ = RequestID("") }); n > 1 {
		t.Errorf("a new request id costs %.0f allocations, want 1 (the string)", n)
	}
}

func TestRequestIDKeepsASaneOne(t *testing.T) {
	for _, tc := range []struct {
		given string
		keep  bool
	}{
		{"caller-id-1", true},
		{"", false},
		{"with space", false},
		{"ctl\x01", false},
		{string(make([]byte, 129)), false},
	} {
		if got := RequestID(tc.given); (got == tc.given) != tc.keep {
			t.Errorf("RequestID(%q) = %q; kept %v, want %v", tc.given, got, got == tc.given, tc.keep)
		}
	}
}
