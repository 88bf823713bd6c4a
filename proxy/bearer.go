package proxy

import (
	"sync"
	"time"

	"github.com/cqgate/cqgate/assertion"
)

// maxBearers bounds the Authorization values bearers keeps: about one per
// organization in use, each a few hundred bytes.
const maxBearers = 4096

// bearers caches each access token's Authorization header value
// ("Bearer " + token, as a one-element header value slice), so that a
// request sent with a cached token builds neither the string nor the
// slice. The slice is shared by every request sent with the token:
// header values on outbound requests are replaced, never changed in
// place. Tokens are immutable once the cache hands them out.
//
// Entries are keyed by the token itself and dropped when the token is
// refused or, once the map is full, when it has expired; a full map of
// live tokens is emptied (the values are rebuilt on demand).
type bearers struct {
	mu sync.RWMutex
	m  map[*assertion.Token][]string
	// now is the clock the expiry sweep reads.
	now func() time.Time
}

// get returns tok's Authorization header value.
func (b *bearers) get(tok *assertion.Token) []string {
	b.mu.RLock()
	v, ok := b.m[tok]
	b.mu.RUnlock()
	if ok {
		return v
	}
	v = []string{"Bearer " + tok.AccessToken}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[*assertion.Token][]string)
	}
	if len(b.m) >= maxBearers {
		b.sweep()
	}
	b.m[tok] = v
	return v
}

// forget drops tok's value (the FHIR server refused tok).
func (b *bearers) forget(tok *assertion.Token) {
	b.mu.Lock()
	delete(b.m, tok)
	b.mu.Unlock()
}

// sweep drops the expired tokens' values, or all when none has expired.
// b.mu is held.
func (b *bearers) sweep() {
	now := time.Now
	if b.now != nil {
		now = b.now
	}
	t := now()
	for tok := range b.m {
		if !tok.Expiry.IsZero() && !t.Before(tok.Expiry) {
			delete(b.m, tok)
		}
	}
	if len(b.m) >= maxBearers {
		clear(b.m)
	}
}

func (b *bearers) len() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.m)
}
