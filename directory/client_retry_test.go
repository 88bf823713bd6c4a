package directory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer answers request n (from 1) with answer(n, w, r) and
// counts requests.
func countingServer(t *testing.T, answer func(n int64, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(n.Add(1), w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// dropConnection closes the connection without an answer.
func dropConnection(t *testing.T, w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	_ = conn.Close()
}

func TestClientsRetry(t *testing.T) {
	tests := []struct {
		name         string
		answer       func(t *testing.T, f flavour, n int64, w http.ResponseWriter, r *http.Request)
		retry        RetryPolicy
		wantRequests int64
		wantOK       bool
		check        func(t *testing.T, err error)
	}{
		{
			name: "403 is never retried",
			answer: func(t *testing.T, f flavour, n int64, w http.ResponseWriter, r *http.Request) {
				http.Error(w, "key not allowed", http.StatusForbidden)
			},
			retry:        RetryPolicy{Attempts: 10},
			wantRequests: 1,
			check:        wantStatus(http.StatusForbidden, "Forbidden"),
		},
		{
			name: "404 is not retried",
			answer: func(t *testing.T, f flavour, n int64, w http.ResponseWriter, r *http.Request) {
				http.NotFound(w, r)
			},
			wantRequests: 1,
			check:        wantIs(ErrNotFound),
		},
		{
			name: "500 then success",
			answer: func(t *testing.T, f flavour, n int64, w http.ResponseWriter, r *http.Request) {
				if n < 3 {
					http.Error(w, "boom", http.StatusInternalServerError)
					return
				}
				fmt.Fprint(w, f.body(cernerOID))
			},
			wantRequests: 3,
			wantOK:       true,
		},
		{
			name: "503 with Retry-After then success",
			answer: func(t *testing.T, f flavour, n int64, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				fmt.Fprint(w, f.body(cernerOID))
			},
			wantRequests: 2,
			wantOK:       true,
		},
		{
			name: "dropped connection then success",
			answer: func(t *testing.T, f flavour, n int64, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					dropConnection(t, w)
					return
				}
				fmt.Fprint(w, f.body(cernerOID))
			},
			wantRequests: 2,
			wantOK:       true,
		},
		{
			name: "500 forever: the configured attempts",
			answer: func(t *testing.T, f flavour, n int64, w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom", http.StatusBadGateway)
			},
			retry:        RetryPolicy{Attempts: 4},
			wantRequests: 4,
			check:        wantStatus(http.StatusBadGateway, "boom"),
		},
		{
			name: "no retries",
			answer: func(t *testing.T, f flavour, n int64, w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom", http.StatusInternalServerError)
			},
			retry:        RetryPolicy{Attempts: 1},
			wantRequests: 1,
			check:        wantStatus(http.StatusInternalServerError, "boom"),
		},
	}
	for _, f := range flavours {
		for _, tt := range tests {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				srv, n := countingServer(t, func(n int64, w http.ResponseWriter, r *http.Request) { tt.answer(t, f, n, w, r) })
				var (
					mu    sync.Mutex
					waits []time.Duration
				)
				retry := tt.retry
				retry.Sleep = func(ctx context.Context, d time.Duration) error {
					mu.Lock()
					defer mu.Unlock()
					waits = append(waits, d)
					return ctx.Err()
				}
				c := withRetry(f.client(srv.URL+f.basePath, srv.Client(), 0), retry)
				org, err := c.Organization(context.Background(), cernerOID)
				if tt.wantOK {
					if err != nil || org.OID != cernerOID {
						t.Fatalf("Organization = %+v, %v", org, err)
					}
				} else {
					if err == nil {
						t.Fatalf("Organization = %+v, want error", org)
					}
					tt.check(t, err)
					assertNoSecret(t, err)
				}
				if got := n.Load(); got != tt.wantRequests {
					t.Errorf("%d requests, want %d", got, tt.wantRequests)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(waits) != int(tt.wantRequests)-1 {
					t.Errorf("waits %v for %d requests", waits, tt.wantRequests)
				}
			})
		}
	}
}

// withRetry sets the retry policy of a directory client.
func withRetry(f Fetcher, p RetryPolicy) Fetcher {
	switch c := f.(type) {
	case *R4Client:
		c.Retry = p
	case *STU3Client:
		c.Retry = p
	}
	return f
}

func TestClientsRetriesStopAtTheDeadline(t *testing.T) {
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			srv, n := countingServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom", http.StatusServiceUnavailable)
			})
			// Real (tiny) sleeps and many attempts: only the deadline
			// stops them.
			c := withRetry(f.client(srv.URL+f.basePath, srv.Client(), 0), RetryPolicy{Attempts: 1 << 20, Initial: time.Millisecond, Max: 3 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := c.Organization(ctx, cernerOID)
				done <- err
			}()
			select {
			case err := <-done:
				var de *Error
				if !errors.As(err, &de) || (de.StatusCode != http.StatusServiceUnavailable && !errors.Is(err, context.DeadlineExceeded)) {
					t.Errorf("error %v: want the last 503 or a deadline *Error", err)
				}
				assertNoSecret(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("Organization did not return after its deadline")
			}
			if got := n.Load(); got < 2 || got >= 1<<20 {
				t.Errorf("%d requests: want retries stopped by the deadline", got)
			}
		})
	}
}

func TestClientsAPIKeySource(t *testing.T) {
	rotated := testKey + "-v2"
	type client struct {
		name string
		make func(base string, hc *http.Client, src APIKeySource) interface {
			Fetcher
			Searcher
		}
		sentKey func(r *http.Request) string
		base    string
	}
	clients := []client{
		{
			name: "R4 header",
			make: func(base string, hc *http.Client, src APIKeySource) interface {
				Fetcher
				Searcher
			} {
				return &R4Client{BaseURL: base, APIKey: "static-ignored", Key: src, HTTPClient: hc, Retry: noSleep}
			},
			sentKey: func(r *http.Request) string { return strings.TrimPrefix(r.Header.Get("Authorization"), "api-key ") },
			base:    "/fhir",
		},
		{
			name: "R4 query",
			make: func(base string, hc *http.Client, src APIKeySource) interface {
				Fetcher
				Searcher
			} {
				return &R4Client{BaseURL: base, Key: src, APIKeyIn: APIKeyInQuery, HTTPClient: hc, Retry: noSleep}
			},
			sentKey: func(r *http.Request) string { return r.URL.Query().Get("_apiKey") },
			base:    "/fhir",
		},
		{
			name: "STU3",
			make: func(base string, hc *http.Client, src APIKeySource) interface {
				Fetcher
				Searcher
			} {
				return &STU3Client{BaseURL: base, Key: src, HTTPClient: hc, Retry: noSleep}
			},
			sentKey: func(r *http.Request) string { return r.URL.Query().Get("apikey") },
			base:    "/fhir-stu3/1.0.1",
		},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				sent []string
			)
			r4 := strings.HasPrefix(c.name, "R4")
			srv, n := countingServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				sent = append(sent, c.sentKey(r))
				mu.Unlock()
				switch {
				case strings.HasSuffix(r.URL.Path, "/Organization") && r4:
					fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset","total":0}`)
				case strings.HasSuffix(r.URL.Path, "/Organization"):
					fmt.Fprint(w, `<Bundle xmlns="http://hl7.org/fhir"><total value="0"/></Bundle>`)
				case r4:
					fmt.Fprint(w, r4Body(cernerOID))
				default:
					fmt.Fprint(w, stu3Body(cernerOID))
				}
			})
			// A source that rotates its key after the first call.
			var calls atomic.Int64
			src := APIKeyFunc(func(ctx context.Context) (string, error) {
				if calls.Add(1) == 1 {
					return testKey, nil
				}
				return rotated, nil
			})
			cl := c.make(srv.URL+c.base, srv.Client(), src)
			if _, err := cl.Organization(context.Background(), cernerOID); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Search(context.Background(), Query{Name: "x"}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			if want := []string{testKey, rotated}; fmt.Sprint(sent) != fmt.Sprint(want) {
				t.Errorf("keys sent %q, want %q", sent, want)
			}
			mu.Unlock()

			// A failing source: a clear error, no secret, no request.
			before := n.Load()
			failing := c.make(srv.URL+c.base, srv.Client(), APIKeyFunc(func(ctx context.Context) (string, error) {
				return "", errors.New("vault: permission denied reading secret/data/cqgate/directory")
			}))
			_, err := failing.Organization(context.Background(), cernerOID)
			var ke *APIKeyError
			if !errors.As(err, &ke) || !ke.Upstream() || !strings.Contains(err.Error(), "permission denied") || !strings.HasPrefix(err.Error(), "directory: ") {
				t.Errorf("failing source: error %v, want an *APIKeyError saying why", err)
			}
			_, err = failing.Search(context.Background(), Query{})
			if !errors.As(err, &ke) {
				t.Errorf("failing source, Search: error %v, want an *APIKeyError", err)
			}
			empty := c.make(srv.URL+c.base, srv.Client(), APIKeyFunc(func(ctx context.Context) (string, error) { return "", nil }))
			if _, err := empty.Organization(context.Background(), cernerOID); !errors.As(err, &ke) || !strings.Contains(err.Error(), "empty key") {
				t.Errorf("empty key: error %v", err)
			}
			// A source whose error echoes the key it just read.
			echo := c.make(srv.URL+c.base, srv.Client(), APIKeyFunc(func(ctx context.Context) (string, error) {
				return testKey, errors.New("lease for " + testKey + " expired")
			}))
			_, err = echo.Organization(context.Background(), cernerOID)
			if !errors.As(err, &ke) {
				t.Errorf("echoing source: error %v", err)
			}
			assertNoSecret(t, err)
			if got := n.Load(); got != before {
				t.Errorf("%d requests without a key, want none", got-before)
			}
			// An invalid OID fails before the source is asked.
			var asked atomic.Bool
			lazy := c.make(srv.URL+c.base, srv.Client(), APIKeyFunc(func(ctx context.Context) (string, error) {
				asked.Store(true)
				return testKey, nil
			}))
			if _, err := lazy.Organization(context.Background(), "urn:oid:1.2.x"); !errors.Is(err, ErrInvalidOID) || asked.Load() {
				t.Errorf("invalid OID: error %v, source asked %v; want ErrInvalidOID before the key", err, asked.Load())
			}
		})
	}
}

func TestAPIKeyErrorWithoutCause(t *testing.T) {
	if got := (&APIKeyError{}).Error(); !strings.HasPrefix(got, "directory: ") {
		t.Errorf("Error() = %q", got)
	}
}

func TestClientsDoNotPrintTheKey(t *testing.T) {
	r4 := &R4Client{BaseURL: "https://user:pw@d.example.test/fhir", APIKey: testKey, APIKeyIn: APIKeyInQuery, Key: APIKeyFunc(nil)}
	stu3 := STU3Client{BaseURL: "https://d.example.test/fhir-stu3", APIKey: testKey}
	for _, s := range []string{
		fmt.Sprint(r4), fmt.Sprintf("%v", *r4), fmt.Sprintf("%+v", r4), fmt.Sprintf("%#v", r4), fmt.Sprintf("%s", r4),
		fmt.Sprint(stu3), fmt.Sprintf("%+v", &stu3), fmt.Sprintf("%#v", stu3),
	} {
		assertNoKeyIn(t, "client description", s)
		if strings.Contains(s, "pw") || !strings.Contains(s, "REDACTED") {
			t.Errorf("description %q: want the key and the password redacted", s)
		}
	}
	if s := fmt.Sprint(R4Client{}); !strings.Contains(s, `APIKey: ""`) || !strings.Contains(s, "Key: nil") {
		t.Errorf("empty client described as %q", s)
	}
}
