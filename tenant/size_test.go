package tenant

import (
	"testing"
	"unsafe"

	"github.com/cqgate/cqgate/internal/callerauth"
)

// A kept Tenant fits the 480-byte size class (512 and 576 are the next): every
// organization requests reach holds one in the Reuser. A field added to
// Tenant should be weighed against that.
func TestTenantFits480Bytes(t *testing.T) {
	if size := unsafe.Sizeof(Tenant{}); size > 480 {
		t.Errorf("Tenant is %d bytes, more than 480", size)
	}
	// Its resolution (one per kept tenant) fits 48.
	if size := unsafe.Sizeof(resolution{}); size > 48 {
		t.Errorf("resolution is %d bytes, more than 48", size)
	}
	if newParty(nil, nil) != nil || newParty(nil, []string{"https://auth.example"}) == nil {
		t.Error("newParty: nil only when configuration adds nothing")
	}
	// syntax keeps a callerauth.ScopeSyntax in a byte.
	for _, s := range []callerauth.ScopeSyntax{callerauth.SyntaxAny, callerauth.SMARTv1, callerauth.SMARTv2} {
		if tn := (&Tenant{syntax: uint8(s)}); tn.scopeSyntax() != s {
			t.Errorf("syntax %v comes back as %v", s, tn.scopeSyntax())
		}
	}
}
