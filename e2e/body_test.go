package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/config"
)

// jsonish returns n reproducible bytes that look like JSON but are not
// all text: quotes, escapes, UTF-8, CR/LF, NUL and high bytes included,
// so that any transcoding, trimming or line-ending change would show.
func jsonish(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	alphabet := []string{`{"resourceType":"Patient",`, `"name":[{"family":"`, `é`, `日本`, `\"`, `\\`, `\u0000`, "\r\n", "\x00", "\xff", "\x80", `}]`, `,`, ` `}
	var b bytes.Buffer
	for b.Len() < n {
		if r.IntN(4) == 0 {
			b.WriteByte(byte(r.IntN(256)))
			continue
		}
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.Bytes()[:n]
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// requestsFor returns the FHIR server's requests with method since index
// from.
func requestsFor(w *world, from int, method string) []fhirRequest {
	var out []fhirRequest
	for _, r := range w.fhir.seen()[from:] {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// sendBody sends body through the gateway; with unknownLength it streams
// it through a pipe, so the request is chunked and its length unknown.
func sendBody(t *testing.T, w *world, method, path string, body []byte, unknownLength bool, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if unknownLength {
		pr, pw := io.Pipe()
		go func() {
			// Written in odd-sized pieces, as a real stream arrives.
			for rest := body; len(rest) > 0; {
				n := min(len(rest), 7777)
				if _, err := pw.Write(rest[:n]); err != nil {
					pw.CloseWithError(err)
					return
				}
				rest = rest[n:]
			}
			pw.Close()
		}()
		rd = pr
	}
	req, err := http.NewRequest(method, w.gateway.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if unknownLength {
		req.ContentLength = -1
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// POST and PUT bodies below proxy.max_replay_body reach the FHIR server
// byte for byte, on the first attempt and on the retry after a 401 alike.
func TestBodyForwardedByteForByte(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) { c.Tokens.MinInterval = 0 }})
	if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
	}
	tests := []struct {
		method, path  string
		wantStatus    int // the FHIR server's answer
		unknownLength bool
	}{
		{"POST", "/Patient", http.StatusCreated, false},
		{"PUT", "/Patient/1316024", http.StatusNotFound, false},
		{"POST", "/Patient", http.StatusCreated, true},
		{"PUT", "/Patient/1316024", http.StatusNotFound, true},
	}
	for i, tt := range tests {
		for _, retry := range []bool{false, true} {
			name := fmt.Sprintf("%s known length=%v after 401=%v", tt.method, !tt.unknownLength, retry)
			t.Run(name, func(t *testing.T) {
				payload := jsonish(uint64(i*2+1), 200<<10)
				want := sum(payload)
				attempts := 1
				if retry {
					w.auth.ExpireAll() // the cached token is refused once
					attempts = 2
				}
				from, exchanges := len(w.fhir.seen()), w.auth.Exchanges()
				resp, body := sendBody(t, w, tt.method, "/fhir/"+cernerOID+tt.path, payload, tt.unknownLength, nil)
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
				}
				got := requestsFor(w, from, tt.method)
				if len(got) != attempts {
					t.Fatalf("the FHIR server saw %d attempts, want %d", len(got), attempts)
				}
				for j, r := range got {
					if h := sum(r.Body); h != want {
						t.Errorf("attempt %d: the FHIR server got %d bytes with sha256 %s, want %d bytes with %s", j+1, len(r.Body), h, len(payload), want)
					}
				}
				if retry && (got[0].Authorized || !got[1].Authorized || w.auth.Exchanges()-exchanges != 1) {
					t.Errorf("want a refused attempt, one exchange and an accepted attempt; got %+v / %+v, %d exchanges",
						got[0].Authorized, got[1].Authorized, w.auth.Exchanges()-exchanges)
				}
			})
		}
	}
}

// A body larger than proxy.max_replay_body is streamed to the FHIR
// server (it arrives whole), and when the FHIR server answers 401 it is
// not retried: the caller gets the 401 and the FHIR server saw one
// attempt. The refused token is still dropped, so the caller's own retry
// gets a new one.
func TestBodyTooLargeToReplayIsStreamedNotRetried(t *testing.T) {
	const maxReplay = 64 << 10
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
		c.Tokens.MinInterval = 0
		c.Proxy.MaxReplayBody = maxReplay
	}})
	for _, unknownLength := range []bool{false, true} {
		t.Run(fmt.Sprintf("known length=%v", !unknownLength), func(t *testing.T) {
			// A small request first, so that a token left refused by an
			// earlier case is replaced.
			if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
			}
			payload := jsonish(42, 1<<20)
			want := sum(payload)

			// Streamed whole.
			from := len(w.fhir.seen())
			resp, body := sendBody(t, w, "POST", "/fhir/"+cernerOID+"/Patient", payload, unknownLength, nil)
			if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), fmt.Sprintf(`"received_bytes":%d`, len(payload))) {
				t.Fatalf("streamed POST: %d %s", resp.StatusCode, body)
			}
			if got := requestsFor(w, from, "POST"); len(got) != 1 || sum(got[0].Body) != want {
				t.Fatalf("the FHIR server saw %d POSTs, want one with the whole body", len(got))
			}

			// Refused: not retried.
			w.auth.ExpireAll()
			from, exchanges := len(w.fhir.seen()), w.auth.Exchanges()
			resp, body = sendBody(t, w, "POST", "/fhir/"+cernerOID+"/Patient", payload, unknownLength, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want the FHIR server's 401: %s", resp.StatusCode, body)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("the FHIR server's challenge did not reach the caller")
			}
			got := requestsFor(w, from, "POST")
			if len(got) != 1 || got[0].Authorized || sum(got[0].Body) != want {
				t.Fatalf("the FHIR server saw %d POSTs, want exactly one refused attempt with the whole body", len(got))
			}
			if n := w.auth.Exchanges() - exchanges; n != 0 {
				t.Errorf("%d exchanges during a request that cannot be retried", n)
			}

			// The caller retries the same upload: the refused token must
			// not be handed out again.
			from = len(w.fhir.seen())
			resp, body = sendBody(t, w, "POST", "/fhir/"+cernerOID+"/Patient", payload, unknownLength, nil)
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("the caller's retry of the upload: %d %s (the token the FHIR server refused was used again)", resp.StatusCode, body)
			}
			if got := requestsFor(w, from, "POST"); len(got) != 1 || sum(got[0].Body) != want {
				t.Errorf("the caller's retry: the FHIR server saw %d POSTs", len(got))
			}
		})
	}
}

// A chunked body that outgrows server.max_body_bytes while it is streamed
// to the FHIR server (it is larger than proxy.max_replay_body, so it is
// not buffered first) ends in a 413 OperationOutcome. The FHIR server
// has seen the start of a request whose body never ended.
func TestBodyStreamedPastMaxBodyBytes(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
		c.Proxy.MaxReplayBody = 64 << 10
		c.Server.MaxBodyBytes = 256 << 10
	}})
	payload := jsonish(7, 1<<20)
	from := len(w.fhir.seen())
	resp, body := sendBody(t, w, "POST", "/fhir/"+cernerOID+"/Patient", payload, true, nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413: %s", resp.StatusCode, body)
	} else {
		decodeOutcome(t, resp, body)
	}
	// The FHIR server's handler runs once the request line and headers
	// arrive; bound the wait for it to record what it got.
	deadline := time.Now().Add(5 * time.Second)
	for len(requestsFor(w, from, "POST")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, r := range requestsFor(w, from, "POST") {
		if len(r.Body) > 256<<10 {
			t.Errorf("the FHIR server got %d bytes, more than server.max_body_bytes", len(r.Body))
		}
		t.Logf("the FHIR server saw a POST with %d bytes of a body that never ended", len(r.Body))
	}
}

// A caller sending "Expect: 100-continue" (curl does for larger bodies)
// gets its body forwarded intact and cqgate's X-Request-Id on the
// answer, although the FHIR server answers 100 Continue on the way (which
// http.Transport consumes: cqgate's forwarder passes no 1xx on).
func TestBodyExpectContinue(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4"})
	payload := jsonish(9, 32<<10)
	tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	req, err := http.NewRequest("POST", w.gateway.URL+"/fhir/"+cernerOID+"/Patient", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("X-Request-Id", "caller-expect-continue")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	posts := requestsFor(w, 0, "POST")
	if len(posts) != 1 || sum(posts[0].Body) != sum(payload) {
		t.Fatalf("the FHIR server saw %d POSTs, want one with the whole body", len(posts))
	}
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "caller-expect-continue" {
		t.Errorf("X-Request-Id on the answer = %q, want the caller's id (the tenant's 100 Continue wiped cqgate's headers)", got)
	}
}
