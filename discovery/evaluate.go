package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// This file is the evaluation side of a Discoverer: one discovery tries
// the sources in order, reads each document at most once, judges what
// each source says (evaluate, without I/O) and lets the first usable
// token URL win. Caching the outcome is results.go's.

// discoveryRun is the state of one discovery.
type discoveryRun struct {
	d      *Discoverer
	r      *request
	maxAge time.Duration
	now    time.Time
	// docs memoizes this run's documents, so /metadata is read once for
	// carequality-token and token.
	docs map[docKind]docResult
	// info collects advertised algorithms and methods from every source
	// read, in order, for the fallback.
	info []claim
}

type docResult struct {
	doc *document
	err error
}

// claim is what a source said.
type claim struct {
	tokenURL     string
	registration string
	// registrationAlgs are the registration endpoint's own algorithms
	// (UDAP registration_endpoint_jwt_signing_alg_values_supported).
	registrationAlgs []string
	algs             []string
	methods          []string
	scopes           []string
	capabilities     []string
	udap             bool
	expires          time.Time // signed_metadata's exp, for UDAP
}

// discover tries r's sources in order.
func (d *Discoverer) discover(ctx context.Context, r *request, maxAge time.Duration) (*Result, error) {
	run := &discoveryRun{d: d, r: r, maxAge: maxAge, now: d.now(), docs: make(map[docKind]docResult)}
	res := &Result{}
	var won *claim
	for _, src := range r.order {
		a, c := run.try(ctx, src)
		res.Attempts = append(res.Attempts, a)
		var te *TrustError
		if errors.As(a.Err, &te) {
			// Metadata the organization's community does not trust is
			// not worked around with a less preferred source.
			return nil, te
		}
		if c != nil {
			won = c
			res.TokenURL, res.Source = c.tokenURL, src
			break
		}
	}
	if won == nil {
		return nil, &NoTokenURLError{FHIRBase: r.base, Attempts: res.Attempts}
	}
	// The registration endpoint's algorithms go with the registration
	// endpoint: from the source used only.
	res.RegistrationEndpoint, res.RegistrationSigningAlgorithms = won.registration, slices.Clone(won.registrationAlgs)
	res.SigningAlgorithms, res.AuthMethods = slices.Clone(won.algs), slices.Clone(won.methods)
	res.ScopesSupported, res.Capabilities = slices.Clone(won.scopes), slices.Clone(won.capabilities)
	for _, c := range run.info {
		if len(res.ScopesSupported) == 0 {
			res.ScopesSupported = slices.Clone(c.scopes)
		}
		if len(res.Capabilities) == 0 {
			res.Capabilities = slices.Clone(c.capabilities)
		}
		if len(res.SigningAlgorithms) == 0 {
			res.SigningAlgorithms = slices.Clone(c.algs)
		}
		if len(res.AuthMethods) == 0 {
			res.AuthMethods = slices.Clone(c.methods)
		}
	}
	for _, c := range run.info {
		res.UDAP = res.UDAP || c.udap
	}
	if slices.Contains(r.order, SourceUDAP) {
		res.Community = r.community
	}
	if m, ok := run.docs[docMetadata]; ok && m.doc != nil {
		res.MetadataURL = m.doc.url
	}
	res.FetchedAt = run.now
	for _, dr := range run.docs {
		if dr.doc != nil && dr.doc.fetchedAt.Before(res.FetchedAt) {
			res.FetchedAt = dr.doc.fetchedAt
		}
	}
	res.Expires = res.FetchedAt.Add(d.ttl)
	if !won.expires.IsZero() && won.expires.Before(res.Expires) {
		res.Expires = won.expires
	}
	return res, nil
}

// document returns this run's document of kind, fetching it at most once.
func (run *discoveryRun) document(ctx context.Context, kind docKind) (string, *document, error) {
	u := docURL(run.r.u, kind, run.d.communityURI(run.r.community))
	if dr, ok := run.docs[kind]; ok {
		return u, dr.doc, dr.err
	}
	doc, err := run.d.document(ctx, kind, u, run.r.override, run.maxAge)
	run.docs[kind] = docResult{doc, err}
	return u, doc, err
}

// try asks one source. The claim is non-nil when the source yielded a
// usable token URL; whatever a read document advertised goes to
// run.info.
func (run *discoveryRun) try(ctx context.Context, src Source) (Attempt, *claim) {
	a := Attempt{Source: src}
	u, doc, err := run.document(ctx, sourceDocument(src))
	a.URL = u
	if err != nil {
		return a.fail(err), nil
	}
	var tr *trust
	if src == SourceUDAP {
		tr = run.d.trust(ctx, run.r.community)
	}
	ev := evaluate(src, doc, run.r.base, run.r.override, tr, run.d.now())
	if ev.info != nil {
		run.info = append(run.info, *ev.info)
	}
	if ev.rejected {
		// The document was read but holds something unusable. Failed
		// fetches are never cached; neither is such a document, so that
		// the next discovery reads it again.
		key := docKey(doc.kind, doc.url, run.r.override)
		if it, ok := run.d.docs.Peek(key); ok && it.Value == doc {
			run.d.docs.Delete(key)
		}
	}
	return ev.attempt, ev.used
}

// sourceDocument is the document src reads.
func sourceDocument(src Source) docKind {
	switch src {
	case SourceUDAP:
		return docUDAP
	case SourceSMARTConfiguration:
		return docSMART
	}
	return docMetadata
}

// evaluation is what evaluate concluded about one source.
type evaluation struct {
	attempt Attempt
	// used is the claim when the source yields a usable token URL.
	used *claim
	// info is what the document advertised, when it was usable at all.
	info *claim
	// rejected says the document holds something unusable.
	rejected bool
}

// evaluate judges what the read document doc says for src, for the FHIR
// server at base (normalized). It does no I/O but tr's revocation checks
// (UDAP). The only way to an OutcomeUsed attempt is through
// checkTokenURL.
func evaluate(src Source, doc *document, base string, override bool, tr *trust, now time.Time) evaluation {
	ev := evaluation{attempt: Attempt{Source: src, URL: doc.url, FetchedAt: doc.fetchedAt}}
	a := &ev.attempt
	reject := func(err error) evaluation {
		ev.attempt = a.fail(&Error{URL: doc.url, StatusCode: http.StatusOK, Err: err})
		ev.rejected = true
		return ev
	}
	if doc.notSupported != 0 {
		a.Outcome = fmt.Sprintf("not supported (%d)", doc.notSupported)
		return ev
	}

	var c claim
	var what, none string
	switch src {
	case SourceCarequalityToken:
		what = "carequality-token URL"
		switch uris, ok := doc.tokenURIs(); {
		case !ok:
			none = "the CapabilityStatement has no oauth-uris extension"
		case uris.CarequalityToken != "":
			c.tokenURL, c.registration = uris.CarequalityToken, uris.CarequalityRegister
		case override && uris.Token != "":
			what = "token URL (Cerner override)"
			c.tokenURL, c.registration = uris.Token, uris.Register
		case override:
			none = "oauth-uris lists neither carequality-token nor token (Cerner override on)"
		default:
			none = "oauth-uris lists no carequality-token"
		}
	case SourceToken:
		what = "token URL"
		switch uris, ok := doc.tokenURIs(); {
		case !ok:
			none = "the CapabilityStatement has no oauth-uris extension"
		case uris.Token == "":
			none = "oauth-uris lists no token"
		default:
			c.tokenURL, c.registration = uris.Token, uris.Register
		}
	case SourceSMARTConfiguration:
		what = "token_endpoint"
		sc := doc.smart
		c = claim{
			tokenURL:     strings.TrimSpace(sc.TokenEndpoint),
			registration: strings.TrimSpace(sc.RegistrationEndpoint),
			algs:         sc.TokenEndpointAuthSigningAlgValuesSupported,
			methods:      sc.TokenEndpointAuthMethodsSupported,
			scopes:       sc.ScopesSupported,
			capabilities: sc.Capabilities,
		}
		if c.tokenURL == "" {
			none = "the document has no token_endpoint"
		}
	case SourceUDAP:
		what = "signed token_endpoint"
		v, err := verifyUDAP(doc.udap, base, tr, now)
		var te *TrustError
		switch {
		case errors.Is(err, ErrNoTrustAnchors):
			ev.attempt = a.fail(err)
			return ev
		case errors.As(err, &te):
			// Not cached as a document either: the next discovery
			// reads and checks it again.
			ev.attempt = a.fail(err)
			ev.rejected = true
			return ev
		case err != nil:
			return reject(err)
		}
		c = claim{
			registration:     strings.TrimSpace(v.md.RegistrationEndpoint),
			registrationAlgs: v.md.RegistrationEndpointJWTSigningAlgValuesSupported,
			algs:             v.md.TokenEndpointAuthSigningAlgValuesSupported,
			methods:          v.md.TokenEndpointAuthMethodsSupported,
			scopes:           v.md.ScopesSupported,
			udap:             true,
			expires:          v.expires,
		}
		switch {
		case v.tokenSigned:
			c.tokenURL = strings.TrimSpace(v.md.TokenEndpoint)
		case strings.TrimSpace(doc.udap.TokenEndpoint) != "":
			a.TokenURL = offered(doc.udap.TokenEndpoint)
			return reject(errors.New("token_endpoint is not among the signed_metadata claims (unsigned values are not trusted)"))
		default:
			none = "neither the metadata nor signed_metadata has a token_endpoint"
		}
	default:
		ev.attempt = a.fail(fmt.Errorf("unknown source %s", quote(string(src))))
		return ev
	}
	ev.info = &c
	if none != "" {
		a.Outcome, a.Detail = OutcomeNoTokenURL, none
		return ev
	}
	a.TokenURL = offered(c.tokenURL)
	if err := checkTokenURL(what, c.tokenURL); err != nil {
		// A document whose token URL is refused is not believed on
		// anything else either: it makes no result a UDAP one, and
		// lends it no algorithms, scopes or registration endpoint.
		ev.info = nil
		return reject(err)
	}
	a.Outcome = OutcomeUsed
	ev.used = &c
	return ev
}

// fail records err as the attempt's failure.
func (a Attempt) fail(err error) Attempt {
	a.Err = err
	var de *Error
	if errors.As(err, &de) {
		a.Outcome = "failed: " + de.reason()
	} else {
		a.Outcome = "failed: " + err.Error()
	}
	return a
}
