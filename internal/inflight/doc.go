// Package inflight bounds how many requests cqgate serves at once, so
// that a burst costs a bounded amount of memory and every request still
// gets an answer.
//
// A Limiter admits up to Config.Max requests at a time. Beyond that, up
// to Config.Queue more wait for a turn, in arrival order, for at most
// Config.Wait. A request that finds the queue full, or whose wait runs
// out, is answered 503 with a FHIR OperationOutcome and Retry-After, and
// nothing is sent upstream for it. A waiting request whose caller goes
// away leaves the queue at once.
//
// Wrap applies a Limiter to the requests a predicate selects (FHIR
// selects cqgate's /fhir/ routes), so that health checks and metrics are
// never held up by a burst of FHIR calls:
//
//	lim := inflight.New(inflight.Config{Max: 256, Queue: 1024, Wait: 5 * time.Second})
//	srv := &http.Server{Handler: lim.Wrap(router, inflight.FHIR)}
//
// A Limiter with Max 0 admits everything and Wrap returns the handler
// unchanged.
package inflight
