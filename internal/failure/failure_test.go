package failure

import (
	"errors"
	"fmt"
	"testing"
)

func TestStronger(t *testing.T) {
	for _, tt := range []struct {
		k, o Kind
		want bool
	}{
		{TooLarge, Refused, true},
		{UpstreamTimeout, UpstreamFailed, true},
		{UpstreamFailed, NotReady, true},
		{Unavailable, Transport, true},
		{Transport, Unavailable, false},
		{Transport, Internal, true},
		{Internal, Transport, false},
		{Internal, Internal, false},
		{NotFound, NotFound, false},
		{Gone, NotFound, true},
		{NotFound, Gone, false},
	} {
		if got := tt.k.Stronger(tt.o); got != tt.want {
			t.Errorf("%v.Stronger(%v) = %v", tt.k, tt.o, got)
		}
	}
}

func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for k := Internal; k < numKinds; k++ {
		n := k.String()
		if n == "" || seen[n] {
			t.Errorf("kind %d: name %q", k, n)
		}
		seen[n] = true
	}
	if got := Kind(200).String(); got != "kind(200)" {
		t.Errorf("unknown kind: %q", got)
	}
}

func TestErrorfAndNew(t *testing.T) {
	sentinel := New(NotFound, "x: not found")
	err := Errorf(UpstreamFailed, "y: %w", sentinel)
	if err.Kind() != UpstreamFailed || err.Error() != "y: x: not found" || !errors.Is(err, sentinel) {
		t.Fatalf("%v %v", err.Kind(), err)
	}
	var c Classified
	if !errors.As(fmt.Errorf("z: %w", sentinel), &c) || c.Kind() != NotFound {
		t.Fatal("sentinel not classified")
	}
}
