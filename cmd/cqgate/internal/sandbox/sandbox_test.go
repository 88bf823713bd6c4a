package sandbox_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
	"github.com/cqgate/cqgate/keys"
)

func TestStartDefaults(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})

	if !strings.HasPrefix(sb.URL, "http://127.0.0.1:") {
		t.Errorf("URL = %q, want http://127.0.0.1:PORT", sb.URL)
	}
	for name, c := range map[string]struct{ got, want string }{
		"OID":           {sb.OID, "2.999.1.1"},
		"ClientID":      {sb.ClientID, "cqgate.dev.localhost"},
		"APIKey":        {sb.APIKey, "sandbox-directory-key"},
		"DirectoryURL":  {sb.DirectoryURL, sb.URL + "/directory/fhir"},
		"FHIRBase":      {sb.FHIRBase, sb.URL + "/fhir/r4/" + sandbox.TenantID},
		"TokenURL":      {sb.TokenURL, sb.FHIRBase + "/Authorization/token"},
		"PlainTokenURL": {sb.PlainTokenURL, sb.URL + "/tenants/" + sandbox.TenantID + "/protocols/oauth2/profiles/smart-v1/token"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", name, c.got, c.want)
		}
	}
	for _, id := range []string{"12724066", "12742400", "1316024"} {
		if !slices.Contains(sb.PatientIDs, id) {
			t.Errorf("PatientIDs %v lacks %s", sb.PatientIDs, id)
		}
	}
}

func TestMaterial(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{ClientID: "gateway.example.test"})
	m := sb.Material
	if m == nil || len(m.Chain) != 1 || m.Signer == nil {
		t.Fatalf("Material = %v, want a key and a one-certificate chain", m)
	}
	key, ok := m.Signer.(*rsa.PrivateKey)
	if !ok || key.N.BitLen() != 2048 {
		t.Errorf("Signer is %T, want an RSA-2048 key", m.Signer)
	}
	leaf := m.Chain[0]
	if leaf.Subject.CommonName != "gateway.example.test" || !slices.Equal(leaf.DNSNames, []string{"gateway.example.test"}) {
		t.Errorf("certificate CN %q, DNS SANs %v; want the client id", leaf.Subject.CommonName, leaf.DNSNames)
	}
	kid, err := keys.KeyIDFor(leaf.PublicKey)
	if err != nil || m.KeyID != kid {
		t.Errorf("KeyID = %q, want the RFC 7638 thumbprint %q (%v)", m.KeyID, kid, err)
	}
	if time.Now().After(m.NotAfter()) {
		t.Errorf("certificate already expired at %s", m.NotAfter())
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.10:0", "example.com:0"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			sb, err := sandbox.Start(t.Context(), sandbox.Options{Addr: addr})
			if err == nil {
				_ = sb.Close()
				t.Fatalf("Start(%q) succeeded, want a refusal", addr)
			}
			if !strings.Contains(err.Error(), "loopback") {
				t.Errorf("error %q does not mention loopback", err)
			}
		})
	}
}

func TestStartLoopbackAddresses(t *testing.T) {
	t.Parallel()
	addrs := []string{"127.0.0.1:0", "localhost:0"}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		_ = ln.Close()
		addrs = append(addrs, "[::1]:0")
	}
	for _, addr := range addrs {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			sb := startSandbox(t, sandbox.Options{Addr: addr})
			r := do(t, http.MethodGet, sb.FHIRBase+"/metadata", nil, nil)
			if r.status != http.StatusOK {
				t.Errorf("GET metadata on %s: status %d", sb.URL, r.status)
			}
		})
	}
}

func TestStartInvalidOptions(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		opts sandbox.Options
	}{
		{"malformed address", t.Context(), sandbox.Options{Addr: "127.0.0.1"}},
		{"token lifetime under a second", t.Context(), sandbox.Options{TokenLifetime: 500 * time.Millisecond}},
		{"cancelled context", cancelled, sandbox.Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, err := sandbox.Start(tt.ctx, tt.opts)
			if err == nil {
				_ = sb.Close()
				t.Fatal("Start succeeded, want an error")
			}
		})
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, sb.FHIRBase+"/metadata", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("request after Close succeeded")
	}
}

func TestRequestIDsAreFresh(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	seen := map[string]bool{}
	for range 5 {
		r := do(t, http.MethodGet, sb.URL+"/nowhere", nil, nil)
		wantOutcome(t, r, http.StatusNotFound)
		id := r.header.Get("X-Request-Id")
		if seen[id] {
			t.Fatalf("X-Request-Id %s repeated", id)
		}
		seen[id] = true
	}
}

// TestConcurrentFlow runs the token exchange and FHIR reads from many
// goroutines at once, for the race detector.
func TestConcurrentFlow(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	const n = 16
	assertions := make([]string, n)
	for i := range assertions {
		assertions[i] = validAssertion(sb).sign(t)
	}
	var wg sync.WaitGroup
	for _, a := range assertions {
		wg.Go(func() {
			if err := exchangeAndRead(t.Context(), sb, a); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := sb.Exchanges(); got != n {
		t.Errorf("Exchanges() = %d, want %d", got, n)
	}
}

// exchangeAndRead exchanges assertion for a token and reads a Patient with
// it. It does not use t, so that goroutines may call it.
func exchangeAndRead(ctx context.Context, sb *sandbox.Sandbox, assertion string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sb.TokenURL, strings.NewReader(tokenForm(assertion).Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	var tr tokenResponse
	err = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token exchange: status %d, %v", resp.StatusCode, err)
	}

	req, err = http.NewRequestWithContext(ctx, http.MethodGet, sb.FHIRBase+"/Patient/1316024", nil)
	if err != nil {
		return err
	}
	req.Header = fhirHeader(tr.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("read Patient: status %d", resp.StatusCode)
	}
	return nil
}
