package callerauth

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Rule is what one caller may do. The zero value of each list has the
// meaning documented on it.
type Rule struct {
	// Organizations lists the organizations the caller may reach: exact
	// OIDs ("1.2.3.4", also "urn:oid:1.2.3.4"), prefixes ending in ".*"
	// ("2.16.840.1.113883.3.*" matches 2.16.840.1.113883.3.7 and
	// 2.16.840.1.113883.3.7.1 but neither 2.16.840.1.113883.31 nor
	// 2.16.840.1.113883.3 itself), or "*" for every organization. It must
	// not be empty.
	Organizations []string
	// Methods lists the HTTP methods the caller may use, or "*" for all.
	// Empty means read-only: GET and HEAD. A POST to a path ending in
	// "/_search" (FHIR search by POST) is a read and is checked as GET.
	Methods []string
	// Scopes lists the SMART scopes the caller may have tokens exchanged
	// for. Every token of Request.Scope must be allowed by one of them:
	// an identical scope, or a SMART clinical scope
	// (patient|user|system/Resource.perm) of the same context whose
	// resource is the same or "*" and whose permissions include the
	// requested ones, in v1 ("read", "write", "*") or v2 ("cruds"
	// letters) form, v1 "read" being v2 "rs" and "write" "cud"; so
	// system/*.read allows system/Patient.read and system/Patient.rs, and
	// system/*.rs allows system/Observation.s. A granted scope with a v2
	// query ("?category=laboratory") allows only that exact query; one
	// without allows any. Other scopes ("openid", "launch") match only
	// themselves. Empty means the caller's scope is not restricted here
	// (the gateway's configured scope applies).
	Scopes []string
	// PurposesOfUse lists the purposes of use the caller may assert, e.g.
	// "urn:oid:2.16.840.1.113883.5.8#TREAT", compared exactly. Empty
	// means the caller may assert none (a request asserting none is
	// allowed).
	PurposesOfUse []string
	// ExchangePurposes lists the TEFCA exchange purpose codes (e.g.
	// "T-TREAT") the caller may choose per request, compared exactly.
	// Empty means the caller may choose none (a request choosing none
	// is allowed).
	ExchangePurposes []string
}

// Request is what a caller asks to do.
type Request struct {
	// OID is the organization, bare and canonical (as directory.ParseOID
	// returns it); a "urn:oid:" prefix is ignored.
	OID string
	// Method is the HTTP method.
	Method string
	// FHIRPath is the path after /fhir/{oid}, e.g. "/Patient/_search".
	FHIRPath string
	// Scope is the space-separated scope the token will be exchanged
	// for, or empty.
	Scope string
	// PurposesOfUse are the purposes of use the caller asserts, as header
	// values: each may hold several, separated by commas.
	PurposesOfUse []string
	// ExchangePurpose is the TEFCA exchange purpose code the caller
	// chose, or empty.
	ExchangePurpose string
}

// DeniedError says which configuration rule denied a request. It
// deserves a 403.
type DeniedError struct {
	// Caller is the caller's name.
	Caller string
	// Rule is the configuration path of the rule that denied, e.g.
	// "callers.billing-svc.organizations", or "callers.<name>" for a
	// caller that has no rule.
	Rule string
	// Reason says what was not allowed, e.g. "organization 1.2.3.5 is not
	// allowed".
	Reason string
}

// Error returns e.g. `callerauth: caller "billing-svc" denied by
// callers.billing-svc.methods: method DELETE is not allowed`.
func (e *DeniedError) Error() string {
	return "callerauth: caller " + strconv.Quote(e.Caller) + " denied by " + e.Rule + ": " + e.Reason
}

// Policy authorizes requests by caller. It is immutable and safe for
// concurrent use; build a new one to change it.
type Policy struct {
	callers map[string]*compiledRule
}

type compiledRule struct {
	name string

	allOrgs    bool
	exactOrgs  map[string]struct{}
	prefixOrgs []string // each ends in "."

	anyMethod bool
	methods   []string

	scopes   []scope // nil: unrestricted
	purposes []string
	xps      []string

	// Configuration paths, built once so that denying costs little too.
	ruleOrgs, ruleMethods, ruleScopes, rulePurposes, ruleXPs string
}

var defaultMethods = []string{"GET", "HEAD"}

var knownMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true,
}

// NewPolicy compiles the rules of each caller (caller name → Rule).
// Every problem is reported, each naming its configuration path
// ("callers.billing-svc.organizations[1]").
func NewPolicy(callers map[string]Rule) (*Policy, error) {
	p := &Policy{callers: make(map[string]*compiledRule, len(callers))}
	var errs []error
	for _, name := range sortedKeys(callers) {
		c, err := compileRule(name, callers[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.callers[name] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func compileRule(name string, r Rule) (*compiledRule, error) {
	base := "callers." + name
	if err := checkCallerName(name); err != nil {
		return nil, fmt.Errorf("callerauth: callers.%s: %w", truncate(name), err)
	}
	c := &compiledRule{
		name:         name,
		exactOrgs:    make(map[string]struct{}),
		ruleOrgs:     base + ".organizations",
		ruleMethods:  base + ".methods",
		ruleScopes:   base + ".scopes",
		rulePurposes: base + ".purposes_of_use",
		ruleXPs:      base + ".exchange_purposes",
	}
	var errs []error
	bad := func(rule string, i int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("callerauth: %s[%d]: "+format, append([]any{rule, i}, args...)...))
	}

	if len(r.Organizations) == 0 {
		errs = append(errs, fmt.Errorf(`callerauth: %s: empty; list OIDs, prefixes such as "2.16.840.1.113883.3.*", or "*" for all`, c.ruleOrgs))
	}
	for i, pat := range r.Organizations {
		pat = strings.TrimSpace(pat)
		if len(pat) >= len(urnOID) && strings.EqualFold(pat[:len(urnOID)], urnOID) {
			pat = pat[len(urnOID):]
		}
		switch {
		case pat == "*":
			c.allOrgs = true
		case strings.HasSuffix(pat, ".*"):
			prefix := strings.TrimSuffix(pat, "*")
			if !validArcs(strings.TrimSuffix(prefix, "."), 1) {
				bad(c.ruleOrgs, i, `%s is not an OID prefix followed by ".*"`, quote(pat))
				continue
			}
			c.prefixOrgs = append(c.prefixOrgs, prefix)
		case validArcs(pat, 2):
			c.exactOrgs[pat] = struct{}{}
		default:
			bad(c.ruleOrgs, i, `%s is not an OID, an OID prefix ending in ".*", or "*"`, quote(pat))
		}
	}

	methods := r.Methods
	if len(methods) == 0 {
		methods = defaultMethods
	}
	for i, m := range methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		switch {
		case m == "*":
			c.anyMethod = true
		case knownMethods[m]:
			c.methods = append(c.methods, m)
		default:
			bad(c.ruleMethods, i, "%s is not an HTTP method cqgate forwards (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS) or *", quote(m))
		}
	}

	if len(r.Scopes) > 0 {
		c.scopes = make([]scope, 0, len(r.Scopes))
	}
	for i, s := range r.Scopes {
		s = strings.TrimSpace(s)
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			bad(c.ruleScopes, i, "%s is not a single scope", quote(s))
			continue
		}
		c.scopes = append(c.scopes, parseScope(s))
	}

	for i, pou := range r.PurposesOfUse {
		pou = strings.TrimSpace(pou)
		if pou == "" || strings.ContainsAny(pou, ", \t\r\n") {
			bad(c.rulePurposes, i, "%s is not a single purpose of use", quote(pou))
			continue
		}
		c.purposes = append(c.purposes, pou)
	}
	for i, xp := range r.ExchangePurposes {
		xp = strings.TrimSpace(xp)
		if xp == "" || strings.ContainsAny(xp, ", \t\r\n") {
			bad(c.ruleXPs, i, "%s is not a single exchange purpose code", quote(xp))
			continue
		}
		c.xps = append(c.xps, xp)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Authorize returns nil if the caller id may make req, or a
// *DeniedError naming the rule that denied it. The checks run in the
// order organizations, methods, scopes, purposes of use. It does not
// allocate when it allows.
func (p *Policy) Authorize(id *Identity, req Request) error {
	if id == nil {
		return &DeniedError{Rule: "callers", Reason: "no authenticated caller"}
	}
	c, ok := p.callers[id.Name]
	if !ok {
		return &DeniedError{Caller: id.Name, Rule: "callers." + id.Name, Reason: "caller is not configured"}
	}
	if !c.orgAllowed(trimURN(req.OID)) {
		if req.OID == "" {
			return c.deny(c.ruleOrgs, "no organization given")
		}
		return c.deny(c.ruleOrgs, "organization "+quote(req.OID)+" is not allowed")
	}
	if search := req.Method == "POST" && isSearch(req.FHIRPath); !c.methodAllowed(req.Method, search) {
		if search {
			return c.deny(c.ruleMethods, "POST _search counts as GET, which is not allowed")
		}
		return c.deny(c.ruleMethods, "method "+quote(req.Method)+" is not allowed")
	}
	if c.scopes != nil {
		for rest := req.Scope; rest != ""; {
			var tok string
			tok, rest, _ = strings.Cut(rest, " ")
			if tok != "" && !c.scopeAllowed(tok) {
				return c.deny(c.ruleScopes, "scope "+quote(tok)+" is not allowed")
			}
		}
	}
	for _, v := range req.PurposesOfUse {
		for rest := v; rest != ""; {
			var pou string
			pou, rest, _ = strings.Cut(rest, ",")
			pou = strings.TrimSpace(pou)
			if pou != "" && !c.purposeAllowed(pou) {
				return c.deny(c.rulePurposes, "purpose of use "+quote(pou)+" is not allowed")
			}
		}
	}
	if xp := req.ExchangePurpose; xp != "" && !slices.Contains(c.xps, xp) {
		return c.deny(c.ruleXPs, "exchange purpose "+quote(xp)+" is not allowed")
	}
	return nil
}

// AnyMethod reports whether the caller may use every method, so that
// the entries of a batch or transaction it posts need no checking.
func (p *Policy) AnyMethod(id *Identity) bool {
	if id == nil {
		return false
	}
	c, ok := p.callers[id.Name]
	return ok && c.anyMethod
}

// Has reports whether the policy has a rule for the caller.
func (p *Policy) Has(caller string) bool {
	_, ok := p.callers[caller]
	return ok
}

// Callers returns the sorted names of the callers with a rule.
func (p *Policy) Callers() []string { return sortedKeys(p.callers) }

func (c *compiledRule) deny(rule, reason string) error {
	return &DeniedError{Caller: c.name, Rule: rule, Reason: reason}
}

func (c *compiledRule) orgAllowed(oid string) bool {
	if oid == "" {
		return false
	}
	if c.allOrgs {
		return true
	}
	if _, ok := c.exactOrgs[oid]; ok {
		return true
	}
	for _, p := range c.prefixOrgs {
		if len(oid) > len(p) && strings.HasPrefix(oid, p) {
			return true
		}
	}
	return false
}

func (c *compiledRule) methodAllowed(method string, search bool) bool {
	if c.anyMethod {
		return true
	}
	if search {
		method = "GET"
	}
	for _, m := range c.methods {
		if m == method {
			return true
		}
	}
	return false
}

func (c *compiledRule) scopeAllowed(tok string) bool {
	r := parseScope(tok)
	for i := range c.scopes {
		if c.scopes[i].covers(&r) {
			return true
		}
	}
	return false
}

func (c *compiledRule) purposeAllowed(pou string) bool {
	for _, p := range c.purposes {
		if p == pou {
			return true
		}
	}
	return false
}

const urnOID = "urn:oid:"

func trimURN(oid string) string {
	if len(oid) >= len(urnOID) && strings.EqualFold(oid[:len(urnOID)], urnOID) {
		return oid[len(urnOID):]
	}
	return oid
}

// isSearch reports whether a FHIR path is a search by POST: it ends in
// "_search" as its last segment ("/_search", "/Patient/_search").
func isSearch(path string) bool {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	path = strings.TrimSuffix(path, "/")
	return path == "_search" || strings.HasSuffix(path, "/_search")
}

// validArcs reports whether s is at least min dot-separated arcs of
// decimal digits without leading zeros.
func validArcs(s string, min int) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	n := 0
	for arc := range strings.SplitSeq(s, ".") {
		if arc == "" || (len(arc) > 1 && arc[0] == '0') {
			return false
		}
		for i := 0; i < len(arc); i++ {
			if arc[i] < '0' || arc[i] > '9' {
				return false
			}
		}
		n++
	}
	return n >= min
}

// quote quotes untrusted text for an error: truncated, escaped.
func quote(s string) string {
	if len(s) <= 64 {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:64]) + "..."
}
