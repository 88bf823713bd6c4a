package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

func TestLinkExpiry(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := bytes.Repeat([]byte{9}, LinkKeySize)
	tests := []struct {
		name    string
		ttl     time.Duration // 0: the default
		after   time.Duration // since sealing
		expired bool
	}{
		{"fresh", time.Hour, 0, false},
		{"a second before the TTL", time.Hour, time.Hour - time.Second, false},
		{"at the TTL", time.Hour, time.Hour, true},
		{"long after", time.Hour, 30 * 24 * time.Hour, true},
		{"default TTL, a day less a second", 0, DefaultLinkTTL - time.Second, false},
		{"default TTL, a day", 0, DefaultLinkTTL, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(t0)
			ls, err := NewLinks(key, LinkTTL(tt.ttl), LinkClock(clock.Now))
			if err != nil {
				t.Fatal(err)
			}
			in := Link{URL: "https://storage.example/b/o.ndjson?sig=1", Type: "Patient", RequiresToken: true}
			s, err := ls.Seal("1.2.3", in)
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.after)
			got, err := ls.Open("1.2.3", s)
			if !tt.expired {
				if err != nil || got != in {
					t.Fatalf("Open = %+v, %v; want %+v", got, err, in)
				}
				return
			}
			if !errors.Is(err, ErrLinkExpired) || errors.Is(err, ErrBadLink) || got != (Link{}) {
				t.Fatalf("Open = %+v, %v; want ErrLinkExpired and nothing of the link", got, err)
			}
			ttl := tt.ttl
			if ttl == 0 {
				ttl = DefaultLinkTTL
			}
			if at := t0.Add(ttl).Format(time.RFC3339); !strings.Contains(err.Error(), at) {
				t.Errorf("the error %q does not say when the link expired (%s)", err, at)
			}
			if strings.Contains(err.Error(), "storage.example") {
				t.Errorf("the error %q shows the sealed URL", err)
			}
		})
	}
}

// TestLinkVersion1Refused: links sealed before links had an expiry (format
// version 1) are refused as links cqgate did not make, under the same key.
func TestLinkVersion1Refused(t *testing.T) {
	t.Parallel()
	ls, err := NewLinks(bytes.Repeat([]byte{3}, LinkKeySize))
	if err != nil {
		t.Fatal(err)
	}
	url := "https://storage.example/b/o.ndjson"
	plain := append([]byte{1, 1, byte(len("Patient"))}, "Patient"+url...) // version 1: no expiry
	nonce := make([]byte, ls.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	v1 := base64.RawURLEncoding.EncodeToString(ls.aead.Seal(nonce, nonce, plain, []byte("1.2.3")))
	if got, err := ls.Open("1.2.3", v1); !errors.Is(err, ErrBadLink) || got != (Link{}) {
		t.Fatalf("a version 1 link opened: %+v, %v", got, err)
	}
}

// TestLinkKinds: the status flag is sealed in the payload, so a link
// opens as the kind it was made as; version 2 payloads made before the
// flag existed (flags 0 and 1, hand-sealed here as such a cqgate did)
// open as the file links they were; a flag cqgate does not know is a
// link it did not make; an expired status link says what it was.
func TestLinkKinds(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	ls, err := NewLinks(bytes.Repeat([]byte{5}, LinkKeySize), LinkTTL(time.Hour), LinkClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	const status = "https://fhir.partner.example/bulkstatus/job7?x=1"
	handSealed := func(flags byte, typ, url string) string {
		plain := append([]byte{linkVersion, flags}, binary.BigEndian.AppendUint64(nil, uint64(t0.Add(time.Hour).Unix()))...)
		plain = append(append(plain, byte(len(typ))), typ+url...)
		nonce := make([]byte, ls.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(ls.aead.Seal(nonce, nonce, plain, []byte("1.2.3")))
	}
	for _, tc := range []struct {
		name string
		seal func() (string, error)
		want Link
		bad  bool
	}{
		{"status link", func() (string, error) { return ls.Seal("1.2.3", Link{URL: status, Status: true}) }, Link{URL: status, Status: true}, false},
		{"file link", func() (string, error) { return ls.Seal("1.2.3", Link{URL: status, Type: "Patient"}) }, Link{URL: status, Type: "Patient"}, false},
		{"an older file link, flags 0", func() (string, error) { return handSealed(0, "Patient", status), nil }, Link{URL: status, Type: "Patient"}, false},
		{"an older file link, flags 1", func() (string, error) { return handSealed(1, "", status), nil }, Link{URL: status, RequiresToken: true}, false},
		{"an unknown flag", func() (string, error) { return handSealed(linkStatus|4, "", status), nil }, Link{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.seal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ls.Open("1.2.3", s)
			if tc.bad {
				if !errors.Is(err, ErrBadLink) || got != (Link{}) {
					t.Errorf("Open = %+v, %v; want ErrBadLink", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Open = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	s, err := ls.Seal("1.2.3", Link{URL: status, Status: true})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	_, err = ls.Open("1.2.3", s)
	if !errors.Is(err, ErrLinkExpired) || !strings.Contains(err.Error(), "status link") || strings.Contains(err.Error(), "job7") {
		t.Errorf("an expired status link: %v; want ErrLinkExpired saying it was a status link, without its URL", err)
	}
}

// TestExpiredDownloadLinkIsGone: through Forward, an expired link is a
// 410 OperationOutcome that fetches nothing, while a forged one stays 404.
func TestExpiredDownloadLinkIsGone(t *testing.T) {
	t.Parallel()
	w := newFwdWorld(t, nil, bulkPartner(true))
	w.net.hosts["storage.partner.example"] = ndjson("x\n")
	clock := clocktest.New(time.Now())
	ls, err := NewLinks(nil, LinkTTL(time.Hour), LinkClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	w.px.links = ls
	sealed, err := ls.Seal("1.2.3", Link{URL: "https://storage.partner.example/bucket/a.ndjson", RequiresToken: true})
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int, string) {
		rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/"+DownloadSegment+"/"+sealed, nil, nil)
		return rr.Code, rr.Body.String()
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("fresh link: %d %s", code, body)
	}
	clock.Advance(time.Hour)
	code, body := get()
	if code != http.StatusGone || !strings.Contains(body, `"OperationOutcome"`) || !strings.Contains(body, "expired") ||
		!strings.Contains(body, "poll the status URL again") {
		t.Errorf("expired link: %d %s; want a 410 OperationOutcome saying it expired", code, body)
	}
	if n := len(w.net.requests("storage.partner.example")); n != 1 {
		t.Errorf("storage got %d requests, want only the one before expiry", n)
	}
	forged := []byte(sealed)
	forged[len(forged)/2] ^= 1
	rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/"+DownloadSegment+"/"+string(forged), nil, nil)
	if rr.Code != http.StatusNotFound {
		t.Errorf("forged link after expiry: %d, want 404", rr.Code)
	}
}

// TestManifestExpiresWithItsLinks: a completed export's answer says, in
// Expires, when the links cqgate sealed in it stop working, unless the
// partner's own Expires comes first.
func TestManifestExpiresWithItsLinks(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name, partner string
		want          time.Time
	}{
		{"no Expires of the partner", "", start.Add(time.Hour)},
		{"the partner's comes first", start.Add(10 * time.Minute).Format(http.TimeFormat), start.Add(10 * time.Minute)},
		{"the partner's comes later", start.Add(48 * time.Hour).Format(http.TimeFormat), start.Add(time.Hour)},
		{"the partner's cannot be read", "soon", start.Add(time.Hour)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			partner := bulkPartner(true)
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.partner != "" {
					w.Header().Set("Expires", tt.partner)
				}
				partner.ServeHTTP(w, r)
			})
			w := newFwdWorld(t, nil, handler)
			clock := clocktest.New(start)
			ls, err := NewLinks(nil, LinkTTL(time.Hour), LinkClock(clock.Now))
			if err != nil {
				t.Fatal(err)
			}
			w.px.links = ls
			rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/bulkstatus/job1", nil, nil)
			if rr.Code != http.StatusOK || !strings.Contains(rr.Body.String(), DownloadSegment) {
				t.Fatalf("status answer: %d %s", rr.Code, rr.Body.String())
			}
			got, err := http.ParseTime(rr.Header().Get("Expires"))
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("Expires %q, want %s", rr.Header().Get("Expires"), tt.want.Format(http.TimeFormat))
			}
		})
	}
}
