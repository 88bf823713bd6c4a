package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/tenant"
)

// Report is the whole resolution chain of an OID, for the operator
// command cqgate resolve: the directory entry and chosen endpoint, every
// discovery source tried and what it answered, the token URL, and the
// signing algorithm that would be used.
type Report struct {
	Tenant *tenant.Tenant `json:"tenant"`
	// KeyID and CertificateNotAfter describe the identity's signing key.
	KeyID               string    `json:"key_id,omitempty"`
	CertificateNotAfter time.Time `json:"certificate_not_after,omitzero"`
	// Algorithm is the algorithm assertions would be signed with, or
	// AlgorithmError why none fits.
	Algorithm      string `json:"algorithm,omitempty"`
	AlgorithmError string `json:"algorithm_error,omitempty"`
}

// Resolve reports how cqgate reaches oid. It fails only when the OID is
// invalid or the directory lookup fails; a discovery failure is in the
// report.
func (g *Gateway) Resolve(ctx context.Context, oid string) (*Report, error) {
	canon, err := directory.ParseOID(oid)
	if err != nil {
		return nil, err
	}
	t, err := g.Tenants.Describe(ctx, canon)
	if err != nil {
		return nil, err
	}
	r := &Report{Tenant: t}
	id, err := g.identityOf(t)
	if err != nil {
		r.AlgorithmError = err.Error()
		return r, nil
	}
	m := id.holder.Current()
	if m == nil {
		r.AlgorithmError = "the signing key is not loaded"
		return r, nil
	}
	r.KeyID, r.CertificateNotAfter = m.KeyID, m.NotAfter()
	alg, err := assertion.Negotiate(m.Public(), t.Algorithm, t.SigningAlgorithms)
	if err != nil {
		r.AlgorithmError = err.Error()
	} else {
		r.Algorithm = string(alg)
	}
	return r, nil
}

// Preview is a client assertion as it would be sent, without its
// signature: for cqgate assert.
type Preview struct {
	Header map[string]any `json:"header"`
	Claims map[string]any `json:"claims"`
}

// PreviewAssertion signs a client assertion for oid, with the claims and
// header the token exchange would send (assertion.Exchanger.Claims: jku
// too), and returns its decoded header and claims. The signature is
// dropped; the private key is never in reach.
func (g *Gateway) PreviewAssertion(ctx context.Context, oid string) (*tenant.Tenant, *Preview, error) {
	t, id, err := g.resolveForToken(ctx, oid)
	if err != nil {
		return nil, nil, err
	}
	// The claims the identity's exchanger signs (jku included), so
	// that the preview is the assertion Exchange would send.
	claims, err := id.exchanger.Claims(t.TokenRequest())
	if err != nil {
		return t, nil, err
	}
	jwt, err := id.signer.Sign(ctx, claims)
	if err != nil {
		return t, nil, err
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return t, nil, errors.New("gateway: the signer produced no compact JWS")
	}
	p := &Preview{}
	for i, into := range []*map[string]any{&p.Header, &p.Claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return t, nil, fmt.Errorf("gateway: decoding the assertion: %w", err)
		}
		if err := json.Unmarshal(raw, into); err != nil {
			return t, nil, fmt.Errorf("gateway: decoding the assertion: %w", err)
		}
	}
	return t, p, nil
}

// Exchange performs one token exchange for oid, bypassing the cache: for
// cqgate token.
func (g *Gateway) Exchange(ctx context.Context, oid string) (*tenant.Tenant, *assertion.Token, error) {
	t, _, err := g.resolveForToken(ctx, oid)
	if err != nil {
		return nil, nil, err
	}
	tok, err := g.creds.Exchange(t.Context(ctx), t)
	return t, tok, err
}

// Register registers cqgate with oid's UDAP registration endpoint and
// keeps the client id it answers in Vault: for cqgate register.
func (g *Gateway) Register(ctx context.Context, oid string) (*tenant.Tenant, *assertion.Registered, error) {
	if g.regs == nil {
		return nil, nil, errors.New("gateway: udap.registrations.path is not set: registered client ids would have nowhere to go")
	}
	t, _, err := g.resolveForToken(ctx, oid)
	if err != nil {
		return nil, nil, err
	}
	reg, err := g.regs.Register(t.Context(ctx), t)
	return t, reg, err
}

func (g *Gateway) resolveForToken(ctx context.Context, oid string) (*tenant.Tenant, *identity, error) {
	canon, err := directory.ParseOID(oid)
	if err != nil {
		return nil, nil, err
	}
	if err := g.WaitReady(ctx); err != nil {
		return nil, nil, fmt.Errorf("gateway: signing key not loaded: %w", err)
	}
	t, err := g.Tenants.Resolve(ctx, canon)
	if err != nil {
		return nil, nil, err
	}
	id, err := g.identityOf(t)
	if err != nil {
		return nil, nil, err
	}
	return t, id, nil
}
