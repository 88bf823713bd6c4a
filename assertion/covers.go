package assertion

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cqgate/cqgate/internal/callerauth"
)

// ScopeError says a token's granted scope does not cover a request. It
// deserves a 403: the request would be refused by the FHIR server, or
// worse, answered beyond what the partner granted.
type ScopeError struct {
	// Granted is the scope the token endpoint granted.
	Granted string
	// Method and Path are the request's (the FHIR path after the base).
	Method, Path string
	// Interaction is the FHIR interaction, Needs the SMART permission it
	// needs, e.g. "system/Observation.s".
	Interaction, Needs string
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("assertion: the granted scope %q does not cover %s %s (%s needs %s); set tokens.enforce_granted_scope: false to forward such requests anyway",
		e.Granted, e.Method, e.Path, e.Interaction, e.Needs)
}

// Covers checks that the token's granted scope covers the request method
// fhirPath?rawQuery in the backend-services context ("system"); the query
// is parsed only when a granted scope restricts one. The granted
// scope is Token.Scope, or requested when the server did not say (RFC
// 6749 §5.1: then it granted what was asked). It returns nil when it
// cannot judge: a batch, transaction or $operation, a path that is not a
// FHIR REST interaction, or a grant holding no SMART clinical scope (a
// server with scopes of its own); the FHIR server decides those.
//
// A token handed out by a Cache parses its grant once, at its first
// Covers, not on every request sent with it.
func (t *Token) Covers(requested, method, fhirPath, rawQuery string) error {
	granted := t.Scope
	if strings.TrimSpace(granted) == "" {
		granted = requested
	}
	grant := t.grant(granted) // nil: not a Cache's token
	if grant != nil && !grant.Smart() || grant == nil && !smart(granted) {
		return nil
	}
	in, err := callerauth.RequestInteraction(method, fhirPath)
	if err != nil {
		if errors.Is(err, callerauth.ErrUndetermined) {
			return nil
		}
		return nil // not FHIR REST: the server answers it
	}
	if in.Name == "search-system" && method != http.MethodPost && pageOfEarlierSearch(rawQuery) {
		// [base]?_getpages=… (HAPI's paging): the next page of a search
		// the server knows and cqgate does not; left to the server, as
		// a batch is.
		return nil
	}
	var query url.Values
	if strings.Contains(granted, "?") {
		query, _ = url.ParseQuery(rawQuery)
	}
	if grant != nil && grant.Covers("system", in, query) || grant == nil && callerauth.GrantCovers(granted, "system", in, query) {
		return nil
	}
	return &ScopeError{Granted: granted, Method: method, Path: fhirPath, Interaction: in.Name,
		Needs: "system/" + in.Resource + "." + in.Perm.String()}
}

// pageOfEarlierSearch reports whether a query on the base names a page of
// an earlier search, and nothing else: HAPI FHIR's next links are
// [base]?_getpages=…, with only its paging and output parameters beside
// (a search parameter beside _getpages would make it a search a server
// other than HAPI runs, unchecked).
func pageOfEarlierSearch(rawQuery string) bool {
	paged := false
	for pair := range strings.SplitSeq(rawQuery, "&") {
		name, _, _ := strings.Cut(pair, "=")
		switch name {
		case "_getpages":
			paged = true
		case "_getpagesoffset", "_count", "_bundletype", "_format", "_pretty", "_summary", "_elements", "":
		default:
			return false
		}
	}
	return paged
}

// smart reports whether a granted scope holds a SMART clinical scope.
func smart(granted string) bool {
	for tok := range strings.FieldsSeq(granted) {
		if _, ok := callerauth.ParseScope(tok); ok {
			return true
		}
	}
	return false
}

// grant is granted, parsed, for a token a Cache handed out: kept with
// its prebuilt values (parsed at the first call, kept while granted is
// the same). Nil for any other token, which Covers checks unparsed.
func (t *Token) grant(granted string) *callerauth.Grant {
	if t.pre == nil {
		return nil
	}
	if g := t.pre.grant.Load(); g != nil && g.Scope == granted {
		return g
	}
	g := callerauth.ParseGrant(granted)
	t.pre.grant.Store(g)
	return g
}
