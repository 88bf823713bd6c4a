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

func TestRequestIDIn(t *testing.T) {
	bufs := make([]RequestIDBuffer, 1000)
	ids := make(map[string]bool, len(bufs))
	for i := range bufs {
		id := RequestIDIn("", &bufs[i])
		if !uuidV4.MatchString(id) || ids[id] {
			t.Fatalf("RequestIDIn = %q: not a version 4 UUID, or repeated", id)
		}
		ids[id] = true
	}
	for id := range ids {
		if !uuidV4.MatchString(id) {
			t.Fatalf("request id %q changed after it was made", id)
		}
	}
	for _, tc := range []struct {
		given string
		keep  bool
	}{{"caller-id-1", true}, {"with space", false}, {"ctl\x01", false}} {
		var buf RequestIDBuffer
		if got := RequestIDIn(tc.given, &buf); (got == tc.given) != tc.keep || !tc.keep && !uuidV4.MatchString(got) {
			t.Errorf("RequestIDIn(%q) = %q, want kept = %v", tc.given, got, tc.keep)
		}
	}
	var buf RequestIDBuffer
	if n := testing.AllocsPerRun(100, func() { _ = RequestIDIn("", &buf) }); n != 0 {
		t.Errorf("a new request id in a buffer costs %.0f allocations, want 0", n)
	}
}
