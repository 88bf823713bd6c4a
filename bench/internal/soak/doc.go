// Package soak is the library of cqgate's bounded soak (bench/soak.sh,
// bench/cmd/soak): a steady open-loop load on loopback (Drive), the
// classification of every answer that was not a 200 as expected (it
// matches a failure the upstream injected on purpose, by request id) or
// unexpected (Classifier), scraping cqgate's Prometheus metrics (Scrape),
// and the report with its verdict (Report).
//
// # Classification
//
// The upstream (bench/internal/fhirstub with Faults) records, per
// X-Request-Id, every attempt of a request that had a failed one, and
// cqgate forwards the caller's X-Request-Id and keeps it on its retries.
// So the last upstream attempt of a request says exactly what cqgate
// should have answered:
//
//	last upstream attempt   cqgate's answer that is expected
//	injected 503            503 with the upstream's X-Fhirstub-Injected: 503 (passed through)
//	injected reset          502 (a transport-level retry that succeeds ends as 200 instead)
//	injected 401            401 passed through, or 503 with Retry-After: a new token
//	                        may not be had yet (tokens.min_interval)
//	none recorded           503 with Retry-After within min_interval of an injected
//	                        401 for the same organization (the refused token is
//	                        dropped and no new one may be had yet)
//
// Anything else that is not a 200 (a 5xx after the upstream answered 200,
// a transport error, a 401 for an expired token, the driver falling behind
// its schedule) is unexpected.
//
// # Verdict
//
// PASS needs zero unexpected answers, no expired or unknown token
// presented upstream, token exchanges within what the token lifetime and
// the injected 401s explain, goroutines back at their baseline (within a
// slack) when the load stops, and the heap not grown by more than a factor;
// Report.Evaluate says how each threshold was chosen.
package soak
