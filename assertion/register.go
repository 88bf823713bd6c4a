package assertion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Registration describes a UDAP dynamic client registration request (UDAP
// Security IG, registration.md) for the client_credentials grant.
type Registration struct {
	// URL is the registration endpoint; it is also the software
	// statement's aud.
	URL string
	// Issuer is the client URI: a uniformResourceIdentifier SAN of the
	// signing certificate. It is the software statement's iss and sub.
	Issuer string
	// ClientName is the human-readable name of the client application.
	ClientName string
	// Contacts are URIs to reach the operator; at least one must be a
	// mailto: address.
	Contacts []string
	// Scope is the space-separated list of scopes the client will ask
	// for, e.g. "system/Patient.read system/Observation.read".
	Scope string
	// GrantTypes defaults to ["client_credentials"], the only grant this
	// package uses.
	GrantTypes []string
	// Cancel asks the server to cancel the registration of Issuer: the
	// software statement carries an empty grant_types.
	Cancel bool
	// Algorithm signs the software statement; empty follows the key and
	// Accepted (see Negotiate).
	Algorithm jose.SignatureAlgorithm
	// Accepted are the server's
	// registration_endpoint_jwt_signing_alg_values_supported; empty means
	// no constraint.
	Accepted []string
	// Certifications are signed certification JWTs sent alongside;
	// usually none.
	Certifications []string
	// TEFCA, when set, adds a TEFCA Basic App Certification signed with
	// the same key (self-asserted, as the Facilitated FHIR SOP v2.0
	// describes for registration in the TEFCA community).
	TEFCA *TEFCACertification
}

// TEFCA Basic App Certification names (udap-dotnet, Udap.Tefca.Model).
const (
	TEFCACertificationName = "TEFCA Basic App Certification"
	TEFCACertificationURI  = "https://rce.sequoiaproject.org/udap/profiles/basic-app-certification"
)

// TEFCACertification is what the TEFCA Basic App Certification asserts.
type TEFCACertification struct {
	// ExchangePurposes are the XP codes (e.g. "T-TREAT") the client
	// registers for; each is sent as XPSystem#code.
	ExchangePurposes []string
	// HomeCommunityID is the client's home community id (urn:oid:...).
	HomeCommunityID string
}

// certificationClaims are a UDAP certification's claims besides the
// registered ones (UDAP Certifications and Endorsements).
type certificationClaims struct {
	CertificationName       string   `json:"certification_name"`
	CertificationURIs       []string `json:"certification_uris"`
	ClientName              string   `json:"client_name"`
	GrantTypes              []string `json:"grant_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope,omitempty"`
	ExchangePurposes        []string `json:"exchange_purposes"`
	HomeCommunityID         string   `json:"home_community_id"`
}

// validate checks the certification's values.
func (c *TEFCACertification) validate() []string {
	var problems []string
	if len(c.ExchangePurposes) == 0 {
		problems = append(problems, "the TEFCA certification needs at least one exchange purpose")
	}
	for _, xp := range c.ExchangePurposes {
		if !slices.Contains(XPCodes, xp) {
			problems = append(problems, fmt.Sprintf("exchange purpose %q is not a TEFCA XP code", xp))
		}
	}
	if !isAbsoluteURI(c.HomeCommunityID) {
		problems = append(problems, fmt.Sprintf("home community id %q is not an absolute URI", c.HomeCommunityID))
	}
	return problems
}

// Registered is the registration endpoint's answer (RFC 7591 §3.2.1).
type Registered struct {
	// ClientID is the client_id to use as iss and sub of client
	// assertions for this server.
	ClientID string
	// StatusCode is 201 for a new registration, 200 for a modified one.
	StatusCode int
	// RequestID is the server's X-Request-Id, if any.
	RequestID string
	// Cancelled reports that the server confirmed a cancellation (an
	// empty grant_types in the response).
	Cancelled bool
	// The metadata the server registered, which may differ from the
	// requested.
	ClientName              string
	GrantTypes              []string
	Scope                   string
	TokenEndpointAuthMethod string
	Contacts                []string
	// Raw holds every member of the response but software_statement
	// (which would let anyone who sees it replay the registration).
	Raw map[string]json.RawMessage
	// At is when the registration was answered.
	At time.Time
}

// RegistrationError is a failed registration. When the server answered
// with an RFC 7591 §3.2.2 error response, its fields are kept.
type RegistrationError struct {
	// URL is the registration endpoint.
	URL string
	// StatusCode is the HTTP status, 0 when no response was received.
	StatusCode int
	// ErrorCode and ErrorDescription are the RFC 7591 error (e.g.
	// invalid_software_statement) and error_description.
	ErrorCode        string
	ErrorDescription string
	// RequestID is the upstream's X-Request-Id response header.
	RequestID string
	// Err is the underlying transport or decoding error, if any.
	Err error
}

func (e *RegistrationError) Error() string {
	var b strings.Builder
	b.WriteString("assertion: client registration at ")
	b.WriteString(e.URL)
	b.WriteString(" failed")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.ErrorCode != "" {
		fmt.Fprintf(&b, ": %s", e.ErrorCode)
	}
	if e.ErrorDescription != "" {
		fmt.Fprintf(&b, " (%s)", e.ErrorDescription)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " X-Request-Id=%s", e.RequestID)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *RegistrationError) Unwrap() error { return e.Err }

// Upstream reports that the failure is the registration server's or the
// network's.
func (e *RegistrationError) Upstream() bool { return true }

// Registrar registers cqgate as a client with UDAP dynamic client
// registration: it signs a software statement with the Signer's key and
// certificate (same header as client assertions: alg, typ, kid, x5c) and
// POSTs it as JSON. It follows no redirects and never retries: a
// registration changes server state. A Registrar is safe for concurrent
// use.
type Registrar struct {
	// Signer signs the software statements.
	Signer *Signer
	// HTTPClient sends the request; its Timeout bounds it. nil means a
	// client with DefaultTimeout.
	HTTPClient *http.Client
	// Clock stamps Registered.At; nil means time.Now.
	Clock func() time.Time
}

// softwareStatement holds the UDAP software statement claims besides the
// registered ones.
type softwareStatement struct {
	ClientName              string   `json:"client_name"`
	Contacts                []string `json:"contacts"`
	GrantTypes              []string `json:"grant_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
}

// registrationRequest is the body of the registration request.
type registrationRequest struct {
	SoftwareStatement string   `json:"software_statement"`
	Certifications    []string `json:"certifications"`
	UDAP              string   `json:"udap"`
}

// validate checks r and returns the grant types to send.
func (r *Registration) validate() ([]string, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if err := checkURL("registration URL", r.URL); err != nil {
		add("%s", strings.TrimPrefix(err.Error(), "assertion: "))
	}
	if !isAbsoluteURI(r.Issuer) {
		add("issuer %q is not an absolute URI", r.Issuer)
	}
	if strings.TrimSpace(r.ClientName) == "" {
		add("client name is empty")
	}
	if !slices.ContainsFunc(r.Contacts, func(c string) bool {
		return strings.HasPrefix(c, "mailto:") && len(c) > len("mailto:")
	}) {
		add("contacts need at least one mailto: address")
	}
	if strings.TrimSpace(r.Scope) == "" {
		add("scope is empty")
	}
	if r.TEFCA != nil {
		problems = append(problems, r.TEFCA.validate()...)
	}
	grants := r.GrantTypes
	switch {
	case r.Cancel:
		grants = []string{}
	case len(grants) == 0:
		grants = []string{"client_credentials"}
	default:
		for _, g := range grants {
			if g != "client_credentials" {
				add("grant type %q is not supported (only client_credentials)", g)
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.New("assertion: invalid registration: " + strings.Join(problems, "; "))
	}
	return grants, nil
}

// Register signs a software statement for r and registers it. The error
// is a *RegistrationError once the server was contacted; it never contains
// the software statement.
func (g *Registrar) Register(ctx context.Context, r Registration) (*Registered, error) {
	if g == nil || g.Signer == nil {
		return nil, errors.New("assertion: registrar has no signer")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("assertion: registering: %w", err)
	}
	grants, err := r.validate()
	if err != nil {
		return nil, err
	}
	k, err := g.Signer.key(r.Algorithm, r.Accepted)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(k.m.Chain[0].URIs, func(u *url.URL) bool { return u.String() == r.Issuer }) {
		return nil, fmt.Errorf("assertion: issuer %q is not a URI subject alternative name of the signing certificate (%s)", r.Issuer, uriSANs(k.m.Chain[0].URIs))
	}
	std, err := g.Signer.registered(r.Issuer, r.Issuer, r.URL, false)
	if err != nil {
		return nil, err
	}
	statement, err := k.sign(std, softwareStatement{
		ClientName:              r.ClientName,
		Contacts:                slices.Clone(r.Contacts),
		GrantTypes:              grants,
		TokenEndpointAuthMethod: "private_key_jwt",
		Scope:                   r.Scope,
	})
	if err != nil {
		return nil, err
	}
	certs := slices.Clone(r.Certifications)
	if certs == nil {
		certs = []string{}
	}
	if r.TEFCA != nil {
		cstd, err := g.Signer.registered(r.Issuer, r.Issuer, r.URL, false)
		if err != nil {
			return nil, err
		}
		xps := make([]string, len(r.TEFCA.ExchangePurposes))
		for i, xp := range r.TEFCA.ExchangePurposes {
			xps[i] = XPSystem + "#" + xp
		}
		cert, err := k.sign(cstd, certificationClaims{
			CertificationName:       TEFCACertificationName,
			CertificationURIs:       []string{TEFCACertificationURI},
			ClientName:              r.ClientName,
			GrantTypes:              grants,
			TokenEndpointAuthMethod: "private_key_jwt",
			Scope:                   r.Scope,
			ExchangePurposes:        xps,
			HomeCommunityID:         r.TEFCA.HomeCommunityID,
		})
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	body, err := json.Marshal(registrationRequest{SoftwareStatement: statement, Certifications: certs, UDAP: "1"})
	if err != nil {
		return nil, fmt.Errorf("assertion: encoding the registration request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("assertion: building the registration request for %s: %w", r.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	resp, err := noRedirects(g.HTTPClient).Do(req)
	if err != nil {
		return nil, &RegistrationError{URL: r.URL, Err: err}
	}
	defer resp.Body.Close()
	re := &RegistrationError{URL: r.URL, StatusCode: resp.StatusCode, RequestID: redact(resp.Header.Get("X-Request-Id"), statement, "")}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	switch {
	case err != nil:
		re.Err = fmt.Errorf("reading the registration response: %w", err)
		return nil, re
	case len(raw) > maxTokenResponse:
		re.Err = fmt.Errorf("registration response larger than %d bytes", maxTokenResponse)
		return nil, re
	}
	return g.registered(re, resp.Header.Get("Content-Type"), raw, statement)
}

// registered interprets a registration response.
func (g *Registrar) registered(re *RegistrationError, contentType string, body []byte, statement string) (*Registered, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		if re.StatusCode == http.StatusOK || re.StatusCode == http.StatusCreated {
			re.Err = fmt.Errorf("registration response is not a JSON object: %s", describeBody(contentType, body))
		} else {
			re.Err = fmt.Errorf("unexpected response: %s", describeBody(contentType, body))
		}
		return nil, re
	}
	var v struct {
		ClientID                string   `json:"client_id"`
		ClientName              string   `json:"client_name"`
		GrantTypes              []string `json:"grant_types"`
		Scope                   string   `json:"scope"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
		Contacts                []string `json:"contacts"`
		Error                   string   `json:"error"`
		ErrorDescription        string   `json:"error_description"`
	}
	// Members of the wrong type are left empty rather than failing the
	// whole response; client_id is checked below.
	for name, dst := range map[string]any{
		"client_id": &v.ClientID, "client_name": &v.ClientName, "grant_types": &v.GrantTypes, "scope": &v.Scope,
		"token_endpoint_auth_method": &v.TokenEndpointAuthMethod, "contacts": &v.Contacts,
		"error": &v.Error, "error_description": &v.ErrorDescription,
	} {
		if m, ok := members[name]; ok {
			_ = json.Unmarshal(m, dst)
		}
	}
	if re.StatusCode != http.StatusOK && re.StatusCode != http.StatusCreated {
		if v.Error != "" {
			re.ErrorCode = redact(v.Error, statement, "")
			re.ErrorDescription = redact(v.ErrorDescription, statement, "")
		} else {
			re.Err = fmt.Errorf("unexpected response: %s", describeBody(contentType, body))
		}
		return nil, re
	}
	if v.ClientID == "" {
		re.Err = errors.New("registration response has no client_id")
		return nil, re
	}
	at := time.Now
	if g.Clock != nil {
		at = g.Clock
	}
	_, hasGrants := members["grant_types"]
	delete(members, "software_statement")
	return &Registered{
		ClientID:                v.ClientID,
		StatusCode:              re.StatusCode,
		RequestID:               re.RequestID,
		Cancelled:               hasGrants && len(v.GrantTypes) == 0,
		ClientName:              v.ClientName,
		GrantTypes:              v.GrantTypes,
		Scope:                   v.Scope,
		TokenEndpointAuthMethod: v.TokenEndpointAuthMethod,
		Contacts:                v.Contacts,
		Raw:                     members,
		At:                      at(),
	}, nil
}

// uriSANs lists a certificate's URI SANs for an error message.
func uriSANs(uris []*url.URL) string {
	if len(uris) == 0 {
		return "it has none"
	}
	s := make([]string, len(uris))
	for i, u := range uris {
		s[i] = u.String()
	}
	return "it has " + strings.Join(s, ", ")
}
