package tenant

import (
	"testing"
	"unsafe"

	"github.com/cqgate/cqgate/internal/callerauth"
)

// A kept Tenant fits the 512-byte size class (576 is the next): every
// organization requests reach holds one in the Reuser. A field added to
// Tenant should be weighed against that.
func TestTenantFits512Bytes(t *testing.T) {
	if size := unsafe.Sizeof(Tenant{}); size > 512 {
		t.Errorf("Tenant is %d bytes, more than 512", size)
	}
	// syntax keeps a callerauth.ScopeSyntax in a byte.
	for _, s := range []callerauth.ScopeSyntax{callerauth.SyntaxAny, callerauth.SMARTv1, callerauth.SMARTv2} {
		if tn := (&Tenant{syntax: uint8(s)}); tn.scopeSyntax() != s {
			t.Errorf("syntax %v comes back as %v", s, tn.scopeSyntax())
		}
	}
}
