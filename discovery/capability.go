package discovery

import (
	"errors"
	"fmt"
	"strings"
)

// Extension URLs read from CapabilityStatement.rest[].security.
const (
	// ExtOAuthURIs is the SMART "oauth-uris" extension.
	ExtOAuthURIs = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
	// extCernerCarequalityOAuthURIs is the separate extension Cerner used
	// for a while (2020) to advertise its Carequality token URL as
	// sub-extension "token" (and "register").
	extCernerCarequalityOAuthURIs = "https://fhir-ehr.cerner.com/r4/StructureDefinition/carequality-oauth-uris"
)

// OAuthURIs are the OAuth endpoints a FHIR server advertises in the
// oauth-uris extension of its CapabilityStatement.
type OAuthURIs struct {
	Token            string `json:"token,omitempty"`
	CarequalityToken string `json:"carequality-token,omitempty"`
	// CarequalityRegister is the "register" sub-extension of Cerner's
	// separate carequality-oauth-uris extension, when that extension
	// supplied CarequalityToken.
	CarequalityRegister string `json:"carequality-register,omitempty"`
	Authorize           string `json:"authorize,omitempty"`
	Register            string `json:"register,omitempty"`
	Manage              string `json:"manage,omitempty"`
	Introspect          string `json:"introspect,omitempty"`
	Revoke              string `json:"revoke,omitempty"`
}

// ParseCapabilityStatement reads the oauth-uris extension from a FHIR JSON
// CapabilityStatement (R4, STU3) or Conformance (DSTU2) resource: the
// sub-extensions token, carequality-token, authorize, register, manage,
// introspect and revoke of
// rest[].security.extension[url=http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris],
// each a valueUri (or valueUrl / valueString). When several rest entries
// carry the extension, the first value of each sub-extension wins.
//
// Cerner's 2020 "carequality-oauth-uris" extension is read too: its token
// counts as the carequality-token unless that is given explicitly, and
// its register becomes CarequalityRegister.
//
// A CapabilityStatement without either extension is an error here;
// Discover treats it as a server that advertises no token URL there.
func ParseCapabilityStatement(data []byte) (*OAuthURIs, error) {
	u, err := parseCapabilityStatement(data)
	if err == nil && u == nil {
		err = errNoOAuthURIs
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: parse CapabilityStatement: %w", err)
	}
	return u, nil
}

// errNoOAuthURIs says a CapabilityStatement has neither oauth-uris
// extension.
var errNoOAuthURIs = errors.New("no " + ExtOAuthURIs + " extension in rest[].security")

// parseCapabilityStatement does the work of ParseCapabilityStatement; its
// errors carry no package prefix so that callers can add context. A valid
// CapabilityStatement without oauth-uris yields nil, nil.
func parseCapabilityStatement(data []byte) (*OAuthURIs, error) {
	var cs capabilityStatement
	if err := decodeObject(data, &cs); err != nil {
		return nil, err
	}
	switch cs.ResourceType {
	case "CapabilityStatement", "Conformance":
	case "":
		return nil, errors.New("not a FHIR resource: no resourceType")
	default:
		return nil, fmt.Errorf("resourceType is %s, want CapabilityStatement or Conformance", quote(cs.ResourceType))
	}

	var u OAuthURIs
	var cqToken, cqRegister string
	found := false
	for _, rest := range cs.Rest {
		if rest.Security == nil {
			continue
		}
		for _, e := range rest.Security.Extension {
			switch e.URL {
			case ExtOAuthURIs:
				found = true
				for _, s := range e.Extension {
					var dst *string
					switch s.URL {
					case "token":
						dst = &u.Token
					case "carequality-token":
						dst = &u.CarequalityToken
					case "authorize":
						dst = &u.Authorize
					case "register":
						dst = &u.Register
					case "manage":
						dst = &u.Manage
					case "introspect":
						dst = &u.Introspect
					case "revoke":
						dst = &u.Revoke
					}
					if dst != nil && *dst == "" {
						*dst = strings.TrimSpace(s.value())
					}
				}
			case extCernerCarequalityOAuthURIs:
				found = true
				for _, s := range e.Extension {
					switch {
					case s.URL == "token" && cqToken == "":
						cqToken = strings.TrimSpace(s.value())
					case s.URL == "register" && cqRegister == "":
						cqRegister = strings.TrimSpace(s.value())
					}
				}
			}
		}
	}
	if !found {
		return nil, nil
	}
	if u.CarequalityToken == "" && cqToken != "" {
		u.CarequalityToken, u.CarequalityRegister = cqToken, cqRegister
	}
	return &u, nil
}

// TokenEndpoint returns the token URL to use for Carequality and the
// source it came from: the carequality-token URL when there is one
// (Cerner: "you must utilize the carequality-token URL"), else the token
// URL. ok is false when there is neither. Discover applies a Request's
// order instead; this is the CapabilityStatement-only view.
func (u *OAuthURIs) TokenEndpoint() (url string, source Source, ok bool) {
	switch {
	case u == nil:
		return "", "", false
	case u.CarequalityToken != "":
		return u.CarequalityToken, SourceCarequalityToken, true
	case u.Token != "":
		return u.Token, SourceToken, true
	}
	return "", "", false
}

// CapabilityStatement JSON, reduced to the fields read.
type (
	capabilityStatement struct {
		ResourceType string `json:"resourceType"`
		Rest         []struct {
			Security *struct {
				Extension []extension `json:"extension"`
			} `json:"security"`
		} `json:"rest"`
	}

	extension struct {
		URL         string      `json:"url"`
		ValueURI    string      `json:"valueUri"`
		ValueURL    string      `json:"valueUrl"`
		ValueString string      `json:"valueString"`
		Extension   []extension `json:"extension"`
	}
)

func (e *extension) value() string {
	for _, v := range []string{e.ValueURI, e.ValueURL, e.ValueString} {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
