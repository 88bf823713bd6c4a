package directory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode"

	"github.com/cqgate/cqgate/internal/cache"
	"github.com/cqgate/cqgate/internal/tracing"
)

// Defaults of a ResolverConfig's zero fields.
const (
	// DefaultTTL is how long a directory answer is fresh.
	DefaultTTL = time.Hour
	// DefaultMaxStale is how long past its expiry a directory answer may
	// still be served while the directory fails.
	DefaultMaxStale = 24 * time.Hour
	// DefaultNegativeTTL is how long a "not found" answer is remembered.
	DefaultNegativeTTL = 5 * time.Minute
	// DefaultStaleRetry is how long a stale answer is served without
	// asking the directory again after a failed refresh.
	DefaultStaleRetry = 30 * time.Second
)

// maxStaleReason bounds Entry.StaleReason.
const maxStaleReason = 512

// Sources of an Entry.
const (
	SourceStatic    = "static"
	SourceDirectory = "directory"
)

// ResolverConfig configures a Resolver.
type ResolverConfig struct {
	// Fetcher asks the directory; nil means only Static entries resolve.
	Fetcher Fetcher
	// Static maps OIDs (bare or "urn:oid:" form) to organizations known
	// from configuration. They win over the directory and are never
	// fetched. Keys that are not valid OIDs and nil values are ignored.
	Static map[string]*Organization
	// TTL is how long directory answers are fresh; 0 means DefaultTTL.
	TTL time.Duration
	// MaxStale is how long past its expiry a directory answer is still
	// served, marked Stale, when refreshing it fails with a directory
	// error (a transport failure or timeout, a 5xx, 408 or 429, or a
	// failing APIKeySource; never a 404 or a malformed OID). 0 means
	// DefaultMaxStale; negative disables serving stale answers.
	MaxStale time.Duration
	// StaleRetry is how long, after such a failed refresh, the stale
	// answer is served without asking the directory again, so that an
	// outage does not make every lookup wait for retries. 0 means
	// DefaultStaleRetry; negative means every lookup asks.
	StaleRetry time.Duration
	// NegativeTTL is how long a "not found" answer from the directory is
	// remembered, so that lookups of an unknown OID do not each ask the
	// directory. 0 means DefaultNegativeTTL; negative disables it.
	NegativeTTL time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// Entry is a resolved organization. Its organization is kept in a
// compact form shared with the cache (see record): Organization builds
// the public form, the other methods read it without building it.
type Entry struct {
	// Source is SourceStatic or SourceDirectory.
	Source string
	// CachedAt is when the directory answered, or for a static entry
	// when the Resolver was created.
	CachedAt time.Time
	// Stale says the entry has expired and the directory could not be
	// asked again (see ResolverConfig.MaxStale); StaleReason then says
	// why, in words that hold no secret (the refresh's error message on
	// one printable line of at most 512 bytes), e.g. for a response
	// header.
	Stale       bool
	StaleReason string

	rec *record
}

// NewEntry returns an entry for org from source (SourceStatic or
// SourceDirectory), for DirectoryLookup implementations other than the
// Resolver, such as fakes. org is copied, not kept.
func NewEntry(org *Organization, source string) *Entry {
	return &Entry{Source: source, rec: newRecord(org)}
}

// Organization returns the organization, a new value on every call (for
// the lookup API; the request path reads the methods below).
func (e *Entry) Organization() *Organization { return e.rec.organization() }

// OID is the organization's OID.
func (e *Entry) OID() string { return e.rec.oid() }

// Name is the organization's name.
func (e *Entry) Name() string { return e.rec.name() }

// Active is the organization's active flag.
func (e *Entry) Active() bool { return e.rec.active() }

// EndpointCount is how many endpoints the organization lists.
func (e *Entry) EndpointCount() int { return e.rec.count() }

// FHIRAddress is the Address of the endpoint Organization's
// FHIREndpointFor(prefs) chooses, without building either, and whether
// there is one.
func (e *Entry) FHIRAddress(prefs []string) (string, bool) {
	i := e.rec.fhirEndpoint(prefs)
	if i < 0 {
		return "", false
	}
	return e.rec.endpoint(i).Address, true
}

// Resolver resolves OIDs to organizations: static entries first, then
// the directory, whose answers it caches for a TTL. Concurrent lookups of
// one OID share one directory request. A "not found" answer is
// remembered for NegativeTTL; other failures are not cached, but while
// the directory fails an expired answer is served, marked Stale, for up
// to MaxStale. A Resolver is safe for concurrent use.
type Resolver struct {
	fetcher     Fetcher
	static      map[string]Entry
	now         func() time.Time
	ttl         time.Duration
	maxStale    time.Duration // < 0: disabled
	staleRetry  time.Duration // < 0: ask every time
	negativeTTL time.Duration // < 0: disabled
	// cache holds the latest directory answer per canonical OID: fresh
	// for the TTL, then held MaxStale more for stale-if-error. One map
	// for both: a second one for the last good answer cost a map slot,
	// a key and a boxed value per organization.
	cache    *cache.Cache[held]
	negative *cache.Cache[error] // canonical OID -> "not found"; nil: disabled
}

// held is the latest directory answer for an OID (fetched at its
// Item's FetchedAt).
// Two words (a map slot of 48 bytes, not 56): what is unusual about
// the answer is behind state.
type held struct {
	rec *record
	// state is nil for an answer fetched and not forgotten whose last
	// refresh succeeded, the usual case.
	state *heldState
}

// heldState is what is unusual about a held answer.
type heldState struct {
	// at and reason are when a refresh last failed with a directory
	// error and its message (at is zero when the last refresh
	// succeeded).
	at     time.Time
	reason string
	// refetch says the answer was forgotten (Forget): it is not served
	// fresh any more, only stale-if-error.
	refetch bool
}

// refetch reports whether h was forgotten (Forget).
func (h held) refetch() bool { return h.state != nil && h.state.refetch }

// failed returns when h's last refresh failed and why, if it did.
func (h held) failed() (at time.Time, reason string, ok bool) {
	if h.state == nil || h.state.at.IsZero() {
		return time.Time{}, "", false
	}
	return h.state.at, h.state.reason, true
}

// dropped marks old's record as no longer the cached answer when the
// cache stops holding it as one: deleted, replaced by another record,
// or kept only for stale-if-error (Forget, a failed refresh: a state).
func dropped(old, replacement held, replaced bool) {
	if old.rec != nil && (!replaced || replacement.rec != old.rec || replacement.state != nil) {
		old.rec.drop()
	}
}

// NewResolver returns a Resolver for cfg.
func NewResolver(cfg ResolverConfig) *Resolver {
	r := &Resolver{
		fetcher:     cfg.Fetcher,
		static:      make(map[string]Entry, len(cfg.Static)),
		now:         cfg.Clock,
		ttl:         orDefault(cfg.TTL, DefaultTTL),
		maxStale:    orDefault(cfg.MaxStale, DefaultMaxStale),
		staleRetry:  orDefault(cfg.StaleRetry, DefaultStaleRetry),
		negativeTTL: orDefault(cfg.NegativeTTL, DefaultNegativeTTL),
	}
	if r.ttl < 0 {
		r.ttl = DefaultTTL
	}
	if r.now == nil {
		r.now = time.Now
	}
	// OwnKeys: every key is a cached record's own OID.
	r.cache = cache.New[held](cache.Config{TTL: r.ttl, Keep: max(r.maxStale, 0), Clock: r.now, OwnKeys: true},
		cache.WithDropped(dropped))
	if r.negativeTTL > 0 {
		r.negative = cache.New[error](cache.Config{TTL: r.negativeTTL, Clock: r.now})
	}

	created := r.now()
	for key, org := range cfg.Static {
		oid, err := ParseOID(key)
		if err != nil || org == nil {
			continue
		}
		o := *org // do not modify the caller's value
		if o.OID == "" {
			o.OID = oid
		}
		o.Endpoints = withFHIRVersions(o.Endpoints)
		r.static[oid] = Entry{rec: newRecord(&o), Source: SourceStatic, CachedAt: created}
	}
	return r
}

// orDefault returns d for 0 and v otherwise.
func orDefault(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// Lookup returns the organization for oid (bare or "urn:oid:" form).
// It returns an error wrapping ErrInvalidOID for a malformed OID and
// ErrNotFound when neither the static entries nor the directory know it.
// When the directory fails and an expired answer is at most MaxStale past
// its expiry, that answer is returned with Stale set. ctx bounds only
// this caller's wait: a directory request shared with other callers goes
// on when ctx is done.
func (r *Resolver) Lookup(ctx context.Context, oid string) (e *Entry, err error) {
	ctx, span := tracing.Start(ctx, "cqgate.directory.lookup")
	defer func() { endLookup(span, oid, e, err) }()
	oid, err = ParseOID(oid)
	if err != nil {
		return nil, err
	}
	if e, ok := r.static[oid]; ok {
		return &e, nil
	}
	if r.fetcher == nil {
		return nil, fmt.Errorf("%w: %s (no directory configured)", ErrNotFound, oid)
	}
	if r.negative != nil {
		if err, ok := r.negative.Fresh(oid); ok {
			return nil, err
		}
	}
	now := r.now()
	it, ok := r.cache.Peek(oid)
	if ok && !it.Value.refetch() && now.Sub(it.FetchedAt) < r.ttl {
		return &Entry{rec: it.Value.rec, Source: SourceDirectory, CachedAt: it.FetchedAt}, nil
	}
	if e, ok := r.recentlyFailed(it, ok, now); ok {
		return e, nil
	}
	h, err := r.cache.Do(ctx, oid, func(fctx context.Context) (held, error) {
		return r.fetch(fctx, oid)
	})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			return nil, fmt.Errorf("directory: lookup %s: %w", oid, err)
		}
		if e, ok := r.stale(oid, err); ok {
			return e, nil
		}
		return nil, err
	}
	cachedAt := r.now()
	if it, ok := r.cache.Peek(oid); ok && it.Value.rec == h.rec {
		cachedAt = it.FetchedAt
	}
	return &Entry{rec: h.rec, Source: SourceDirectory, CachedAt: cachedAt}, nil
}

// Answer identifies the directory answer an Entry carries (its cached
// record and when it was fetched), for Current: comparable, two words,
// keeping that answer alive as the Entry does. The zero Answer is no
// answer.
type Answer struct {
	rec *record
	at  int64 // the Entry's CachedAt, Unix nanoseconds
}

// Answer returns the answer e carries.
func (e *Entry) Answer() Answer { return Answer{rec: e.rec, at: e.CachedAt.UnixNano()} }

// Current reports whether a (the Answer of an Entry Lookup returned for
// the canonical oid: the caller keeps the two together) is still the answer Lookup would serve fresh: the
// static entry, or the cached directory answer itself (the same record,
// within its TTL, neither forgotten nor failing). It neither fetches nor
// allocates; a caller that keeps what it built from an Entry uses it to
// know when to build again.
func (r *Resolver) Current(oid string, a Answer) bool {
	if a.rec == nil {
		return false
	}
	if e, ok := r.static[oid]; ok {
		return e.rec == a.rec
	}
	// Held: still the cached answer for its OID (a's, which a Lookup of
	// oid returned), neither replaced nor forgotten nor failing (dropped
	// says when it stops being one), so fetched at a.at, which an Entry
	// of a held record carries. The record's OID is not compared: that
	// reads more of it than the mark does.
	return a.rec.isHeld() && r.now().UnixNano()-a.at < int64(r.ttl)
}

// fetch asks the directory for oid (once for all concurrent lookups) and
// records the answer: cached, remembered as "not found", or marked failed
// for stale-if-error.
func (r *Resolver) fetch(ctx context.Context, oid string) (held, error) {
	// A flight that finished between the caller's miss and this one has
	// filled the cache: do not ask again.
	if it, ok := r.cache.Peek(oid); ok && !it.Value.refetch() && r.now().Sub(it.FetchedAt) < r.ttl {
		return it.Value, nil
	}
	// oid may be a slice of a caller's request line; what is kept must
	// not keep that alive.
	oid = strings.Clone(oid)
	org, err := r.fetcher.Organization(ctx, oid)
	switch {
	case err != nil:
	case org == nil:
		err = fmt.Errorf("directory: lookup %s: fetcher returned no organization", oid)
	case org.OID != oid:
		err = fmt.Errorf("directory: lookup %s: directory returned organization %s", oid, org.OID)
	}
	switch {
	case err == nil:
		if r.negative != nil {
			r.negative.Forget(oid)
		}
		h := held{rec: newRecord(org)}
		h.rec.hold()
		// The key is the record's own OID: no second copy of it.
		r.cache.Put(h.rec.oid(), h)
		return h, nil
	case errors.Is(err, ErrNotFound):
		// The directory says it does not know oid: nothing stale is
		// served for it any more.
		r.cache.Delete(oid)
		if r.negative != nil {
			r.negative.Put(oid, err)
		}
	case transient(err) && r.maxStale >= 0:
		if it, ok := r.cache.Peek(oid); ok {
			it.Value.state = &heldState{at: r.now(), reason: staleReason(err), refetch: it.Value.refetch()}
			r.cache.Set(it.Value.rec.oid(), it)
		}
	}
	return held{}, err
}

// recentlyFailed returns the stale entry for it, the item held for an
// OID (when ok), if a refresh failed less than StaleRetry ago.
func (r *Resolver) recentlyFailed(it cache.Item[held], ok bool, now time.Time) (*Entry, bool) {
	if !ok || r.staleRetry <= 0 || r.maxStale < 0 {
		return nil, false
	}
	if at, _, failed := it.Value.failed(); !failed || now.Sub(at) >= r.staleRetry {
		return nil, false
	}
	return staleEntry(it), true
}

// stale returns the stale entry for oid after a refresh failed with err,
// if err is a directory failure and the entry is not too old.
func (r *Resolver) stale(oid string, err error) (*Entry, bool) {
	if r.maxStale < 0 || !transient(err) {
		return nil, false
	}
	// Peek holds the answer until MaxStale past its expiry.
	it, ok := r.cache.Peek(oid)
	if !ok {
		return nil, false
	}
	e := staleEntry(it)
	e.StaleReason = staleReason(err)
	return e, true
}

func staleEntry(it cache.Item[held]) *Entry {
	e := &Entry{rec: it.Value.rec, Source: SourceDirectory, CachedAt: it.FetchedAt, Stale: true}
	if _, reason, failed := it.Value.failed(); failed {
		e.StaleReason = reason
	}
	return e
}

// staleReason is err's message on one line of printable characters (fit
// for a response header), bounded.
func staleReason(err error) string {
	msg := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, err.Error())
	if len(msg) > maxStaleReason {
		msg = strings.ToValidUTF8(msg[:maxStaleReason], "") + "..."
	}
	return msg
}

// transient reports whether err is a directory failure worth serving a
// stale answer through: no answer (transport failure, timeout), a 5xx,
// 408 or 429, or a failing APIKeySource. A "not found", a malformed OID
// and every other answer of the directory are not.
func transient(err error) bool {
	var (
		de *Error
		ke *APIKeyError
		ne net.Error
	)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalidOID), errors.Is(err, ErrInvalidQuery):
		return false
	case errors.As(err, &ke):
		return true
	case errors.As(err, &de):
		return de.StatusCode == 0 || de.StatusCode >= 500 || de.StatusCode == 408 || de.StatusCode == 429
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		return true
	}
	return false
}

// Forget drops the cached directory answer (and a remembered "not found")
// for oid, so that the next Lookup asks the directory again. The last good
// answer is kept for stale-if-error. A request already in flight is not
// cancelled, but later lookups do not join it.
func (r *Resolver) Forget(oid string) {
	if canon, err := ParseOID(oid); err == nil {
		oid = canon
	}
	// Forget ends the joinable flight and drops the item; the answer is
	// put back, no longer fresh, for stale-if-error.
	it, ok := r.cache.Peek(oid)
	r.cache.Forget(oid)
	if r.negative != nil {
		r.negative.Forget(oid)
	}
	if ok && r.maxStale >= 0 {
		it.Value.state = &heldState{refetch: true}
		r.cache.Set(it.Value.rec.oid(), it)
	}
}

// Search searches the directory when its Fetcher is a Searcher (the R4
// and STU3 clients are). Static entries are not searched.
func (r *Resolver) Search(ctx context.Context, q Query) (*SearchResult, error) {
	s, ok := r.fetcher.(Searcher)
	if !ok {
		return nil, errors.New("directory: search: no searchable directory configured")
	}
	return s.Search(ctx, q)
}
