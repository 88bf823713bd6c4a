package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/internal/retry"
	"github.com/cqgate/cqgate/internal/tracing"
)

// This file is the caching side of a Discoverer: results cached per
// (base, order, override), refreshed ahead of expiry in the background,
// served stale when a refresh fails, and one shared flight per key. What
// a source yields and which one wins is evaluate.go's.

// entry is a cached result with the state of its refreshes. The state
// changes in place: the results cache keeps entries in process. Its
// refresh-failure state is allocated only once a refresh fails, so that
// the thousands of entries whose refreshes succeed do not each carry it.
type entry struct {
	mu   sync.Mutex
	fail *refreshFailure
	// key is the results cache's key of the entry (its own string, not
	// a copy), so that a Cached names the entry alone.
	key string
	res keptResult // never modified
}

// keptResult is a Result as an entry keeps it: one allocation with the
// entry instead of a Result (288 bytes) and its attempts (128 bytes for
// one), the rarely set fields behind a pointer, and the usual single
// attempt (the CapabilityStatement's token URL, used) not stored but
// rebuilt from the fields that say the same. result builds the Result
// callers get, a new one each time, as the clone of a kept Result was.
type keptResult struct {
	tokenURL    string
	source      Source
	metadataURL string
	community   string
	fetchedAt   time.Time
	// attempts is nil when the only attempt was source's, at
	// metadataURL, used, offering tokenURL, fetched at usedAt.
	attempts []Attempt
	more     *moreResult // nil when all its fields are empty
	// expires and usedAt are kept as offsets from fetchedAt (8 bytes
	// each instead of 24): the same instants, in fetchedAt's location.
	expires, usedAt time.Duration
	udap            bool
	// dropped is set (atomically, 1) once the results cache no longer
	// holds the entry this result is in (see entry.drop): in udap's
	// padding, so the entry stays 176 bytes. It is the one field that
	// changes, and only in an entry's own result.
	dropped uint32
}

// expiry is when k must be discovered again.
func (k *keptResult) expiry() time.Time { return k.fetchedAt.Add(k.expires) }

// staleUntil is until when k is still served while its refresh fails:
// MaxStale past its expiry, but not at all past the expiry of a token
// URL taken from UDAP signed_metadata, which is trusted only as checked
// (no later than the metadata's exp, and no longer than the TTL after it
// was checked).
func (d *Discoverer) staleUntil(k *keptResult) time.Time {
	if k.source == SourceUDAP {
		return k.expiry()
	}
	return k.expiry().Add(d.maxStale)
}

// moreResult is what most results do not have. The registration
// endpoint's algorithms (UDAP's) are not a field of their own: they are
// kept in signingAlgorithms' array, past its length (packAlgorithms,
// registrationAlgorithms), so that moreResult stays 112 bytes, its size
// class (a fifth slice would take every UDAP organization's to 144).
type moreResult struct {
	signingAlgorithms, authMethods, scopesSupported, capabilities []string
	registrationEndpoint                                          string
}

// registrationAlgorithms are the registration endpoint's algorithms:
// what signingAlgorithms' array holds past its length.
func (m *moreResult) registrationAlgorithms() []string {
	return m.signingAlgorithms[len(m.signingAlgorithms):cap(m.signingAlgorithms)]
}

// packAlgorithms returns token, followed in its array by registration
// and nothing else (its capacity is exactly both), for moreResult. It
// allocates only when registration is not empty.
func packAlgorithms(token, registration []string) []string {
	if len(registration) == 0 {
		return slices.Clip(token)
	}
	all := make([]string, 0, len(token)+len(registration))
	return append(append(all, token...), registration...)[:len(token)]
}

// keep returns r as an entry keeps it. r is not modified or kept; its
// slices are (the caller made them for this result).
func keep(r *Result) keptResult {
	k := keptResult{tokenURL: r.TokenURL, source: r.Source, metadataURL: r.MetadataURL, community: r.Community,
		fetchedAt: r.FetchedAt, expires: r.Expires.Sub(r.FetchedAt), attempts: r.Attempts, udap: r.UDAP}
	if len(r.Attempts) == 1 {
		a := &r.Attempts[0]
		if a.Source == r.Source && a.URL == r.MetadataURL && a.URL != "" && a.Outcome == OutcomeUsed &&
			a.Detail == "" && a.TokenURL == r.TokenURL && a.Err == nil && !a.FetchedAt.IsZero() {
			k.attempts, k.usedAt = nil, a.FetchedAt.Sub(r.FetchedAt)
		}
	}
	if len(r.SigningAlgorithms) > 0 || len(r.AuthMethods) > 0 || len(r.ScopesSupported) > 0 || len(r.Capabilities) > 0 ||
		r.RegistrationEndpoint != "" || len(r.RegistrationSigningAlgorithms) > 0 {
		k.more = &moreResult{signingAlgorithms: packAlgorithms(r.SigningAlgorithms, r.RegistrationSigningAlgorithms), authMethods: r.AuthMethods,
			scopesSupported: r.ScopesSupported, capabilities: r.Capabilities, registrationEndpoint: r.RegistrationEndpoint}
	}
	return k
}

// result returns a new Result for k, sharing no slices with it.
func (k *keptResult) result() *Result {
	r := &Result{TokenURL: k.tokenURL, Source: k.source, MetadataURL: k.metadataURL, Community: k.community,
		FetchedAt: k.fetchedAt, Expires: k.expiry(), UDAP: k.udap}
	if k.attempts != nil {
		r.Attempts = slices.Clone(k.attempts)
	} else {
		r.Attempts = []Attempt{{Source: k.source, URL: k.metadataURL, Outcome: OutcomeUsed, TokenURL: k.tokenURL, FetchedAt: k.fetchedAt.Add(k.usedAt)}}
	}
	if m := k.more; m != nil {
		r.AuthMethods = slices.Clone(m.authMethods)
		if len(m.signingAlgorithms) > 0 { // not a registration list's empty head
			r.SigningAlgorithms = slices.Clone(m.signingAlgorithms)
		}
		r.ScopesSupported, r.Capabilities = slices.Clone(m.scopesSupported), slices.Clone(m.capabilities)
		r.RegistrationEndpoint = m.registrationEndpoint
		if reg := m.registrationAlgorithms(); len(reg) > 0 {
			r.RegistrationSigningAlgorithms = slices.Clone(reg)
		}
	}
	return r
}

// refreshFailure is the state of an entry's failed refreshes.
type refreshFailure struct {
	retryAt time.Time // no refresh before this
	lastErr error
	bo      backoff.BackOff
}

// drop marks e as no longer held by the results cache, for good:
// replaced by a refresh, forgotten or deleted (internal/cache.WithDropped).
func (e *entry) drop() { atomic.StoreUint32(&e.res.dropped, 1) }

// held reports whether the results cache still holds e under its key.
func (e *entry) held() bool { return atomic.LoadUint32(&e.res.dropped) == 0 }

// droppedEntry is the results cache's WithDropped: an entry it stops
// holding is marked so (a refresh puts a new entry, never the old one
// again).
func droppedEntry(old, replacement *entry, _ bool) {
	if old != nil && old != replacement {
		old.drop()
	}
}

func (e *entry) state() (retryAt time.Time, lastErr error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f := e.fail; f != nil {
		return f.retryAt, f.lastErr
	}
	return time.Time{}, nil
}

// Discover returns the token endpoint of the FHIR server at
// req.FHIRBase: the first source in req.Order that yields an absolute
// http(s) token URL wins. When none does, the error is a
// *NoTokenURLError listing every source tried and why.
//
// Results are cached per (base, order, override) for the TTL and
// refreshed in the background in the RefreshAhead window; when a refresh
// fails the old result is served, marked Stale once expired, until
// MaxStale past its expiry. ctx bounds only this caller's wait: a fetch
// shared with other callers goes on when ctx is done.
func (d *Discoverer) Discover(ctx context.Context, req Request) (out *Result, err error) {
	ctx, span := tracing.Start(ctx, "cqgate.discovery")
	defer func() { endDiscover(span, out, err) }()
	r, err := d.request(req)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discovery: token endpoint of %s: %w", r.base, err)
	}
	now := d.now()
	if e := d.entry(r.key); e != nil {
		kept := &e.res
		retryAt, lastErr := e.state()
		switch {
		case now.Before(kept.expiry()):
			if d.refreshAhead > 0 && !now.Before(kept.expiry().Add(-d.refreshAhead)) && !now.Before(retryAt) {
				d.refreshInBackground(ctx, r)
			}
			return kept.result(), nil
		case now.Before(d.staleUntil(kept)):
			if now.Before(retryAt) {
				return kept.result().stale(lastErr), nil
			}
			fresh, err := d.shared(ctx, r)
			var te *TrustError
			switch {
			case err == nil:
				return fresh, nil
			case ctx.Err() != nil, errors.As(err, &te):
				return nil, err
			}
			return kept.result().stale(err), nil
		}
	}
	return d.shared(ctx, r)
}

// Forget drops every cached result and document for fhirBase, so that
// the next lookup fetches again. Fetches already in flight are not
// cancelled, but later lookups do not join them.
func (d *Discoverer) Forget(fhirBase string) {
	base, u, err := parseBase(fhirBase)
	if err != nil {
		return
	}
	prefix := base + "\x00"
	d.results.ForgetMatching(func(k string) bool { return strings.HasPrefix(k, prefix) })
	uris := []string{""}
	for _, c := range d.communities {
		if c.URI != "" {
			uris = append(uris, c.URI)
		}
	}
	for _, kind := range []docKind{docMetadata, docUDAP, docSMART} {
		for _, uri := range uris {
			for _, override := range []bool{false, true} {
				k := docKey(kind, docURL(u, kind, uri), override)
				d.docs.Forget(k)
			}
		}
	}
}

// Cached is a result Discover returned as the results cache holds it,
// for Current: one pointer, so that a caller keeping one per
// organization (tenant.Resolver) keeps neither the cache key nor a
// time. The zero Cached is no result and never current.
type Cached struct{ e *entry }

// Version returns the cached form of the result cached under key (see
// Key) when res is a copy of it, as Discover returned it: for Current
// later. ok is false when the cached result is another one (or none).
func (d *Discoverer) Version(key string, res *Result) (version Cached, ok bool) {
	it, ok := d.results.Stored(key)
	if !ok || it.Value == nil || res == nil {
		return Cached{}, false
	}
	cached := &it.Value.res
	// Equal times of the documents it rests on, same token URL and
	// source: the same result (evaluated from the same documents).
	if !cached.fetchedAt.Equal(res.FetchedAt) || !cached.expiry().Equal(res.Expires) ||
		cached.tokenURL != res.TokenURL || cached.source != res.Source {
		return Cached{}, false
	}
	return Cached{it.Value}, true
}

// Current reports whether version is still the entry cached under its
// key and the one Discover would serve as it is: fresh, and either
// before its refresh-ahead window or with its next refresh not due yet.
// A caller that keeps what it built from a Result uses it to know when
// to build again: a forgotten, replaced, expired or untrusted result is
// not current (a refresh caches a new entry, never the old one again).
// It neither fetches nor allocates.
func (d *Discoverer) Current(version Cached) bool {
	e := version.e
	// Held: still the entry cached under its key (a Cached is only ever
	// made from a held entry, and one dropped stays dropped).
	if e == nil || !e.held() {
		return false
	}
	now, expires := d.now(), e.res.expiry()
	if !now.Before(expires) {
		return false
	}
	if d.refreshAhead <= 0 || now.Before(expires.Add(-d.refreshAhead)) {
		return true
	}
	// In the refresh-ahead window: current while the next refresh is
	// not due (a failed one backs off).
	retryAt, _ := e.state()
	return now.Before(retryAt)
}

// entry returns the held entry for key, fresh or not; whether it is
// still served is judged by its result's Expires.
func (d *Discoverer) entry(key string) *entry {
	it, ok := d.results.Peek(key)
	if !ok {
		return nil
	}
	return it.Value
}

// refreshInBackground starts one refresh of r's result unless one is in
// flight already.
func (d *Discoverer) refreshInBackground(ctx context.Context, r *request) {
	var done func(error)
	if hook := d.afterRefresh; hook != nil {
		done = func(err error) { hook(r.key, err) }
	}
	d.results.Refresh(ctx, r.key, d.flight(r), done)
}

// shared runs r's discovery once for all concurrent callers and waits
// for it until ctx is done; the Result is the caller's.
func (d *Discoverer) shared(ctx context.Context, r *request) (*Result, error) {
	e, err := d.results.Do(ctx, r.key, d.flight(r))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			return nil, fmt.Errorf("discovery: token endpoint of %s: %w", r.base, err)
		}
		return nil, err
	}
	return e.res.result(), nil
}

// flight is the shared fetch of r's result: it discovers, guards against
// a refresh falling back to a less preferred source because a preferred
// one failed, and caches the outcome. The cache runs it detached from
// the caller's cancellation, bounded by the discovery timeout.
func (d *Discoverer) flight(r *request) func(context.Context) (*entry, error) {
	return func(fctx context.Context) (*entry, error) {
		now := d.now()
		e := d.entry(r.key)
		var old *keptResult
		if e != nil {
			old = &e.res
		}
		maxAge := d.ttl
		if old != nil {
			if now.Before(old.expiry().Add(-d.refreshAhead)) {
				return e, nil // refreshed while this flight was being set up
			}
			if now.Before(old.expiry()) {
				// Refresh ahead: documents as old as the result is are
				// fetched again.
				maxAge = d.ttl - d.refreshAhead
			}
		}
		res, err := d.discover(fctx, r, maxAge)
		// known: the cached result still counts, and a refresh may not
		// downgrade from its source (MaxStale past its expiry, also for
		// a UDAP result); servable: it is still served if this fails.
		known := old != nil && now.Before(old.expiry().Add(d.maxStale))
		servable := old != nil && now.Before(d.staleUntil(old))
		if err == nil && known {
			err = downgrade(r, old, res)
		}
		var te *TrustError
		if errors.As(err, &te) {
			// Never serve a result whose metadata is no longer trusted.
			d.results.Delete(r.key)
			return nil, err
		}
		if err != nil {
			if servable {
				e.failed(now, err, d.refreshRetry)
				d.log.WithFields(logrus.Fields{"fhir_base": r.base, "cached_source": old.source, "cached_expires": old.expiry()}).
					WithError(err).Warn("discovery: refresh failed; serving the cached token URL")
			}
			return nil, err
		}
		fresh := &entry{key: r.key, res: keep(res)}
		d.results.Put(r.key, fresh)
		return fresh, nil
	}
}

// failed records a failed refresh: the next one waits for the entry's
// next backoff.
func (e *entry) failed(now time.Time, err error, p retry.Policy) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail == nil {
		e.fail = &refreshFailure{bo: p.BackOff()}
	}
	e.fail.retryAt = now.Add(e.fail.bo.NextBackOff())
	e.fail.lastErr = err
}

// downgrade returns an error when a refreshed result comes from a source
// less preferred than the cached one's because that source failed (as
// opposed to no longer offering a token URL): a passing outage of
// /metadata must not move a Cerner server from its Carequality token URL
// to its generic one.
func downgrade(r *request, old *keptResult, res *Result) error {
	oldRank, newRank := slices.Index(r.order, old.source), slices.Index(r.order, res.Source)
	if oldRank < 0 || newRank <= oldRank {
		return nil
	}
	for _, a := range res.Attempts {
		if slices.Index(r.order, a.Source) <= oldRank && a.Err != nil {
			return fmt.Errorf("discovery: refreshing the token URL of %s would fall back from %s to %s because %s failed: %w",
				r.base, old.source, res.Source, a.Source, a.Err)
		}
	}
	return nil
}

// stale marks r, the caller's own, stale because of err, and returns it.
func (r *Result) stale(err error) *Result {
	r.Stale = true
	if err != nil {
		r.StaleReason = err.Error()
	} else {
		r.StaleReason = "refresh failed"
	}
	return r
}
