package sandbox

import (
	"sync"
	"sync/atomic"
	"time"
)

// sweepInterval is how often expired jtis and tokens are dropped. Lookups
// check expiry themselves, so sweeping only bounds memory.
const sweepInterval = 30 * time.Second

// state is what a Sandbox remembers between requests: the jtis of
// accepted assertions (until their exp), the access tokens it issued
// (until they expire) and the request counters.
type state struct {
	exchanges  atomic.Int64
	plainCalls atomic.Int64

	mu        sync.Mutex
	jtis      map[string]time.Time // jti -> assertion exp
	tokens    map[string]issuedToken
	lastSweep time.Time
}

// issuedToken is an access token the sandbox handed out.
type issuedToken struct {
	scope   string
	expires time.Time
}

func newState() *state {
	return &state{
		jtis:      make(map[string]time.Time),
		tokens:    make(map[string]issuedToken),
		lastSweep: time.Now(),
	}
}

// useJTI records jti as used until exp. It reports false if the jti was
// already used by an assertion that has not expired yet.
func (st *state) useJTI(jti string, exp, now time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now)
	if prev, ok := st.jtis[jti]; ok && now.Before(prev) {
		return false
	}
	st.jtis[jti] = exp
	return true
}

// issue remembers an access token.
func (st *state) issue(token string, t issuedToken, now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now)
	st.tokens[token] = t
}

// lookup returns the token's grant if it was issued and has not expired.
func (st *state) lookup(token string, now time.Time) (issuedToken, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.tokens[token]
	if !ok || !now.Before(t.expires) {
		return issuedToken{}, false
	}
	return t, true
}

// sweepLocked drops expired entries, at most once per sweepInterval.
func (st *state) sweepLocked(now time.Time) {
	if now.Sub(st.lastSweep) < sweepInterval {
		return
	}
	st.lastSweep = now
	for jti, exp := range st.jtis {
		if !now.Before(exp) {
			delete(st.jtis, jti)
		}
	}
	for tok, t := range st.tokens {
		if !now.Before(t.expires) {
			delete(st.tokens, tok)
		}
	}
}
