package tenant

import (
	"fmt"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/failure"
)

// The token context of a tenant: which token a request to it is sent
// with. Each distinct context (resource server, token URL, client,
// scope, identity, B2B context) is a token of its own.

// IdentityName names the client identity t's assertions are signed with.
func (t *Tenant) IdentityName() string {
	if t.Identity == "" {
		return config.DefaultIdentity
	}
	return t.Identity
}

// TokenRequest is the token request for t; for a TEFCA tenant reached
// with UDAP it says so, with its certificate's exchange purpose, so that
// the exchanger holds hl7-b2b to TEFCA Facilitated FHIR.
func (t *Tenant) TokenRequest() assertion.Request {
	r := t.request()
	if r.UDAP && t.TEFCA {
		r.TEFCA, r.ExchangePurpose = true, t.certificateXP()
	}
	return r
}

// request is TokenRequest without its TEFCA fields, which the token
// cache key (TokenKey, on every request) does not need.
func (t *Tenant) request() assertion.Request {
	r := assertion.Request{
		TokenURL:  t.TokenURL,
		ClientID:  t.ClientID,
		Scope:     t.Scope,
		Algorithm: t.Algorithm,
		Accepted:  t.SigningAlgorithms,
		UDAP:      t.UDAP,
	}
	if t.UDAP {
		r.B2B = t.B2B
	}
	return r
}

// TokenKey is the cache key of t's tokens: the FHIR base they are for,
// token URL, client, scope, identity and the digest of the B2B context
// asserted.
func (t *Tenant) TokenKey() assertion.Key {
	k := t.request().Key()
	k.Resource = t.FHIRBase
	k.Identity = t.IdentityName()
	return k
}

// IdentityError is a tenant whose client identity cqgate has no key for:
// cqgate's own misconfiguration.
type IdentityError struct {
	OID, Identity string
}

func (e *IdentityError) Error() string {
	return fmt.Sprintf("tenant: %s uses identity %q, which is not configured", e.OID, e.Identity)
}

// Kind classifies the error as cqgate's misconfiguration.
func (e *IdentityError) Kind() failure.Kind { return failure.Misconfigured }

// UnknownIdentity is the error for t's identity not being configured.
func (t *Tenant) UnknownIdentity() error {
	return &IdentityError{OID: t.OID, Identity: t.IdentityName()}
}
