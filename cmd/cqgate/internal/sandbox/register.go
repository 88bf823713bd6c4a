package sandbox

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
)

// registerPath is the UDAP dynamic client registration endpoint,
// advertised as the "register" of the carequality-oauth-uris extension.
const registerPath = fhirBasePath + "/Authorization/register"

// maxRegistrationBody bounds a registration request.
const maxRegistrationBody = 64 << 10

// registry remembers the client ids handed out, by software statement
// issuer: registering again with the same issuer modifies the
// registration (200, same client id), as the UDAP IG says.
type registry struct {
	mu      sync.Mutex
	clients map[string]string // iss -> client_id
}

func (g *registry) register(iss string) (clientID string, created bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id, ok := g.clients[iss]; ok {
		return id, false
	}
	if g.clients == nil {
		g.clients = map[string]string{}
	}
	id := uuid.NewString()
	g.clients[iss] = id
	return id, true
}

// statementClaims are the software statement's claims besides the
// registered ones (UDAP Security IG, registration).
type statementClaims struct {
	ClientName              string   `json:"client_name"`
	Contacts                []string `json:"contacts"`
	GrantTypes              []string `json:"grant_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
}

// registrationAnswer is RFC 7591's successful response.
type registrationAnswer struct {
	ClientID                string   `json:"client_id"`
	SoftwareStatement       string   `json:"software_statement"`
	ClientName              string   `json:"client_name"`
	GrantTypes              []string `json:"grant_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
	Contacts                []string `json:"contacts"`
}

// regErrorBody is RFC 7591's error response.
type regErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// regError is an RFC 7591 §3.2.2 error.
type regError struct {
	code, description string
}

func invalidStatement(format string, args ...any) *regError {
	return &regError{code: "invalid_software_statement", description: fmt.Sprintf(format, args...)}
}

// handleRegister serves POST {RegisterURL}: it verifies the UDAP software
// statement as a registration server would (x5c leaf is the trusted
// certificate and verifies the signature; iss = sub = a URI SAN of it;
// aud = this URL; exp after now and at most 5 minutes after iat; a fresh
// jti; client_credentials with private_key_jwt, a client name, a mailto
// contact and a scope) and hands out a client id.
func (s *Sandbox) handleRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, mediaJSON, regErrorBody{Error: "invalid_request", ErrorDescription: "the registration endpoint only accepts POST"})
		return
	}
	var req struct {
		SoftwareStatement string   `json:"software_statement"`
		Certifications    []string `json:"certifications"`
		UDAP              string   `json:"udap"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRegistrationBody+1))
	switch {
	case err != nil || len(body) > maxRegistrationBody:
		s.writeRegError(w, &regError{code: "invalid_client_metadata", description: "the request body could not be read or is larger than 64 KiB"})
		return
	case json.Unmarshal(body, &req) != nil:
		s.writeRegError(w, &regError{code: "invalid_client_metadata", description: "the request body is not a JSON object"})
		return
	case req.UDAP != "1":
		s.writeRegError(w, &regError{code: "invalid_client_metadata", description: `"udap" must be "1"`})
		return
	case req.SoftwareStatement == "":
		s.writeRegError(w, invalidStatement("software_statement is required"))
		return
	}
	iss, c, rerr := s.verifyStatement(req.SoftwareStatement, time.Now())
	if rerr != nil {
		s.writeRegError(w, rerr)
		return
	}
	id, created := s.registry.register(iss)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.log.WithField("client_id", id).WithField("issuer", iss).Info("sandbox: client registered")
	writeJSON(w, status, mediaJSON, registrationAnswer{
		ClientID: id, SoftwareStatement: req.SoftwareStatement, ClientName: c.ClientName,
		GrantTypes: c.GrantTypes, TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, Scope: c.Scope, Contacts: c.Contacts,
	})
}

// verifyStatement checks a software statement and returns its issuer and
// claims.
func (s *Sandbox) verifyStatement(raw string, now time.Time) (string, statementClaims, *regError) {
	var c statementClaims
	tok, err := jwt.ParseSigned(raw, assertionAlgorithms())
	if err != nil || len(tok.Headers) != 1 {
		return "", c, invalidStatement("software_statement is not a compact JWS with one RS256, RS384, ES256 or ES384 signature")
	}
	chains, err := tok.Headers[0].Certificates(x509.VerifyOptions{
		Roots: s.trustPool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	switch {
	case errors.Is(err, jose.ErrMissingX5cHeader):
		return "", c, invalidStatement("the JWT header has no x5c")
	case err != nil || len(chains) == 0 || !chains[0][0].Equal(s.trusted):
		return "", c, &regError{code: "unapproved_software_statement", description: "the x5c leaf certificate is not one this server trusts"}
	}
	var std jwt.Claims
	if err := tok.Claims(s.trusted.PublicKey, &std, &c); err != nil {
		return "", c, invalidStatement("the signature does not verify with the x5c certificate's key")
	}
	sans := make([]string, len(s.trusted.URIs))
	for i, u := range s.trusted.URIs {
		sans[i] = u.String()
	}
	switch {
	case std.Issuer == "" || !slices.Contains(sans, std.Issuer):
		return "", c, invalidStatement("iss %q is not a URI subject alternative name of the certificate %v", std.Issuer, sans)
	case std.Subject != std.Issuer:
		return "", c, invalidStatement("sub %q must equal iss %q", std.Subject, std.Issuer)
	case len(std.Audience) != 1 || std.Audience[0] != s.RegisterURL:
		return "", c, invalidStatement("aud is %q, want exactly the registration URL %q", []string(std.Audience), s.RegisterURL)
	case std.Expiry == nil || !now.Before(std.Expiry.Time()):
		return "", c, invalidStatement("exp is missing or in the past")
	case std.IssuedAt == nil || std.IssuedAt.Time().After(now.Add(clockSkew)):
		return "", c, invalidStatement("iat is missing or in the future")
	case std.Expiry.Time().Sub(std.IssuedAt.Time()) > maxAssertionLifetime:
		return "", c, invalidStatement("exp - iat is longer than %s", maxAssertionLifetime)
	case len(std.ID) < minJTILength:
		return "", c, invalidStatement("jti is missing or shorter than %d characters", minJTILength)
	case !slices.Equal(c.GrantTypes, []string{"client_credentials"}):
		return "", c, &regError{code: "invalid_client_metadata", description: fmt.Sprintf("grant_types is %q; this server registers client_credentials only", c.GrantTypes)}
	case c.TokenEndpointAuthMethod != "private_key_jwt":
		return "", c, &regError{code: "invalid_client_metadata", description: "token_endpoint_auth_method must be private_key_jwt"}
	case strings.TrimSpace(c.ClientName) == "":
		return "", c, &regError{code: "invalid_client_metadata", description: "client_name is required"}
	case !slices.ContainsFunc(c.Contacts, func(v string) bool { return strings.HasPrefix(v, "mailto:") }):
		return "", c, &regError{code: "invalid_client_metadata", description: "contacts need a mailto: address"}
	case strings.TrimSpace(c.Scope) == "":
		return "", c, &regError{code: "invalid_client_metadata", description: "scope is required"}
	}
	if !s.state.useJTI(std.ID, std.Expiry.Time(), now) {
		return "", c, invalidStatement("jti %q was already used", std.ID)
	}
	return std.Issuer, c, nil
}

func (s *Sandbox) writeRegError(w http.ResponseWriter, e *regError) {
	writeJSON(w, http.StatusBadRequest, mediaJSON, regErrorBody{Error: e.code, ErrorDescription: e.description})
}
