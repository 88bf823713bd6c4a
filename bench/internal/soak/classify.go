package soak

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
)

// Class is how an answer is judged.
type Class int

// Classes of answers.
const (
	// OK: a 200.
	OK Class = iota
	// Expected: not a 200, and explained by an injected failure.
	Expected
	// Unexpected: anything else.
	Unexpected
)

func (c Class) String() string {
	switch c {
	case OK:
		return "ok"
	case Expected:
		return "expected"
	case Unexpected:
		return "unexpected"
	}
	return "invalid"
}

// Response is what the driver saw for one request.
type Response struct {
	// ID is the X-Request-Id sent.
	ID  string
	OID string
	// Sent is when the request was due; Done when its answer (or error)
	// was complete.
	Sent, Done time.Time
	// Status is 0 when no answer came (Err says why).
	Status int
	Err    string
	// Injected is the answer's X-Fhirstub-Injected header, RetryAfter its
	// Retry-After header.
	Injected   string
	RetryAfter string
	// Diagnostics is the start of the OperationOutcome's diagnostics.
	Diagnostics string
}

// Classifier judges answers against the upstream's records.
type Classifier struct {
	attempts    func(id string) []fhirstub.Attempt
	refusals    map[string][]time.Time // OID → injected 401s, sorted
	minInterval time.Duration
	slack       time.Duration
}

// DefaultThrottleSlack is added to tokens.min_interval when deciding
// whether a 503 follows an injected 401: the time between the stub's
// refusal and the answer reaching the driver.
const DefaultThrottleSlack = time.Second

// NewClassifier returns a Classifier for the upstream's records
// (fhirstub.Server.Records) and cqgate's tokens.min_interval.
func NewClassifier(records map[string][]fhirstub.Attempt, minInterval time.Duration) *Classifier {
	c := &Classifier{
		attempts:    func(id string) []fhirstub.Attempt { return records[id] },
		refusals:    make(map[string][]time.Time),
		minInterval: minInterval,
		slack:       DefaultThrottleSlack,
	}
	for _, as := range records {
		for _, a := range as {
			if a.Outcome == fhirstub.OutcomeInjected401 {
				c.refusals[a.OID] = append(c.refusals[a.OID], a.At)
			}
		}
	}
	for _, ts := range c.refusals {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	}
	return c
}

// refusedBefore reports whether an injected 401 for oid happened at most
// minInterval+slack before t (and not after it).
func (c *Classifier) refusedBefore(oid string, t time.Time) bool {
	ts := c.refusals[oid]
	// The last refusal at or before t.
	i, _ := slices.BinarySearchFunc(ts, t, func(a, b time.Time) int { return a.Compare(b) })
	if i < len(ts) && ts[i].Equal(t) {
		return true
	}
	if i == 0 {
		return false
	}
	return t.Sub(ts[i-1]) <= c.minInterval+c.slack
}

// Classify judges one answer and says why.
func (c *Classifier) Classify(r Response) (Class, string) {
	if r.Err != "" || r.Status == 0 {
		return Unexpected, "no answer: " + r.Err
	}
	as := c.attempts(r.ID)
	if r.Status == http.StatusOK {
		if len(as) > 0 {
			return OK, "200 after " + describe(as)
		}
		return OK, "200"
	}
	throttled := r.Status == http.StatusServiceUnavailable && r.RetryAfter != "" && r.Injected == ""
	if len(as) == 0 {
		if throttled && c.refusedBefore(r.OID, r.Done) {
			return Expected, "503 Retry-After, no upstream attempt: the organization's token was refused (injected 401) less than min_interval after it was obtained"
		}
		return Unexpected, fmt.Sprintf("HTTP %d and no failed upstream attempt", r.Status)
	}
	last := as[len(as)-1]
	switch last.Outcome {
	case fhirstub.OutcomeInjected503:
		if r.Status == http.StatusServiceUnavailable && r.Injected == "503" {
			return Expected, "503 passed through (injected 503)"
		}
	case fhirstub.OutcomeInjectedReset:
		if r.Status == http.StatusBadGateway {
			return Expected, "502 (injected connection reset)"
		}
	case fhirstub.OutcomeInjected401:
		switch {
		case r.Status == http.StatusUnauthorized && r.Injected == "401":
			return Expected, "401 passed through (injected 401; no new token could be had within min_interval, or the retry was refused too)"
		case throttled:
			return Expected, "503 Retry-After (injected 401; no new token within min_interval)"
		}
	case fhirstub.OutcomeOK:
		return Unexpected, fmt.Sprintf("HTTP %d although the upstream's last answer was 200 (after %s)", r.Status, describe(as))
	}
	return Unexpected, fmt.Sprintf("HTTP %d after %s", r.Status, describe(as))
}

// describe names a request's upstream attempts: "injected-401, ok".
func describe(as []fhirstub.Attempt) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += ", "
		}
		s += string(a.Outcome)
	}
	return s
}

// Recovered counts the requests whose id starts with prefix+"-" that had
// a failed upstream attempt but whose last attempt was answered 200: the
// answers cqgate turned into a 200 (its 401 retry with a new token, or
// Go's transport retrying a GET after a reset on a reused connection).
func Recovered(records map[string][]fhirstub.Attempt, prefix string) int64 {
	var n int64
	for id, as := range records {
		if len(as) > 1 && as[len(as)-1].Outcome == fhirstub.OutcomeOK && strings.HasPrefix(id, prefix+"-") {
			n++
		}
	}
	return n
}

// Tally counts classified answers.
type Tally struct {
	Total      int64
	Status     map[int]int64
	ByClass    [3]int64
	ByReason   map[Class]map[string]int64
	Recovered  int64      // 200s after a failed upstream attempt (see Recovered)
	Examples   []Response // unexpected answers, the first MaxExamples
	exampleMax int
}

// MaxExamples bounds Tally.Examples.
const MaxExamples = 20

// NewTally returns an empty Tally.
func NewTally() *Tally {
	return &Tally{
		Status:     make(map[int]int64),
		ByReason:   map[Class]map[string]int64{OK: {}, Expected: {}, Unexpected: {}},
		exampleMax: MaxExamples,
	}
}

// AddOK counts n plain 200s that need no classification.
func (t *Tally) AddOK(n int64) {
	t.Total += n
	t.Status[http.StatusOK] += n
	t.ByClass[OK] += n
	t.ByReason[OK]["200"] += n
}

// Add classifies r and counts it.
func (t *Tally) Add(c *Classifier, r Response) Class {
	class, reason := c.Classify(r)
	t.Total++
	t.Status[r.Status]++
	t.ByClass[class]++
	if class == Unexpected && r.Err != "" {
		reason = "no answer (transport error or timeout)"
	}
	t.ByReason[class][reason]++
	if class == Unexpected && len(t.Examples) < t.exampleMax {
		t.Examples = append(t.Examples, r)
	}
	return class
}
