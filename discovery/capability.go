package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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

// Sub-extension names of the oauth-uris extension, also used as
// Result.Source.
const (
	SourceToken            = "token"
	SourceCarequalityToken = "carequality-token"
)

// OAuthURIs are the OAuth endpoints a FHIR server advertises in the
// oauth-uris extension of its CapabilityStatement.
type OAuthURIs struct {
	Token            string
	CarequalityToken string
	Authorize        string
	Register         string
	Manage           string
	Introspect       string
	Revoke           string
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
// counts as the carequality-token unless that is given explicitly.
func ParseCapabilityStatement(data []byte) (*OAuthURIs, error) {
	u, err := parseCapabilityStatement(data)
	if err != nil {
		return nil, fmt.Errorf("discovery: parse CapabilityStatement: %w", err)
	}
	return u, nil
}

// parseCapabilityStatement does the work of ParseCapabilityStatement; its
// errors carry no package prefix so that callers can add context.
func parseCapabilityStatement(data []byte) (*OAuthURIs, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("empty document")
	case trimmed[0] != '{':
		return nil, fmt.Errorf("not a JSON object (starts with %s)", quote(string(trimmed[:min(len(trimmed), 16)])))
	}
	var cs capabilityStatement
	if err := json.Unmarshal(data, &cs); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch cs.ResourceType {
	case "CapabilityStatement", "Conformance":
	case "":
		return nil, errors.New("not a FHIR resource: no resourceType")
	default:
		return nil, fmt.Errorf("resourceType is %s, want CapabilityStatement or Conformance", quote(cs.ResourceType))
	}

	var u OAuthURIs
	var cqToken string
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
					set := func(dst *string) {
						if *dst == "" {
							*dst = strings.TrimSpace(s.value())
						}
					}
					switch s.URL {
					case "token":
						set(&u.Token)
					case "carequality-token":
						set(&u.CarequalityToken)
					case "authorize":
						set(&u.Authorize)
					case "register":
						set(&u.Register)
					case "manage":
						set(&u.Manage)
					case "introspect":
						set(&u.Introspect)
					case "revoke":
						set(&u.Revoke)
					}
				}
			case extCernerCarequalityOAuthURIs:
				found = true
				for _, s := range e.Extension {
					if s.URL == "token" && cqToken == "" {
						cqToken = strings.TrimSpace(s.value())
					}
				}
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("no %s extension in rest[].security", ExtOAuthURIs)
	}
	if u.CarequalityToken == "" {
		u.CarequalityToken = cqToken
	}
	return &u, nil
}

// TokenEndpoint returns the token URL to use for Carequality and the
// name of the sub-extension it came from: the carequality-token URL when
// there is one (Cerner: "you must utilize the carequality-token URL"),
// else the token URL. ok is false when there is neither.
func (u *OAuthURIs) TokenEndpoint() (url string, source string, ok bool) {
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

// quote quotes untrusted input for an error message: truncated, with
// control characters and invalid UTF-8 escaped.
func quote(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxLen]) + "..."
}
