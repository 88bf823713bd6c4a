package fhirstub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cqgate/cqgate/bench/internal/loopback"
)

// maxClientBody bounds what the helpers below read from the stub.
const maxClientBody = 1 << 20

// FetchStats GETs {base}/_stats from a running stub.
func FetchStats(ctx context.Context, hc *http.Client, base string) (*Stats, error) {
	if _, err := loopback.CheckURL(base); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/_stats", nil)
	if err != nil {
		return nil, fmt.Errorf("fhirstub: stats request: %w", err)
	}
	body, err := do(hc, req)
	if err != nil {
		return nil, err
	}
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("fhirstub: stats: %w", err)
	}
	return &st, nil
}

// FetchToken obtains an access token for oid from a running stub's token
// endpoint, as a baseline proxy's operator would once by hand. The
// assertion it sends is unsigned: the stub does not verify signatures.
func FetchToken(ctx context.Context, hc *http.Client, base, oid string) (string, error) {
	if _, err := loopback.CheckURL(base); err != nil {
		return "", err
	}
	tokenURL := strings.TrimRight(base, "/") + "/o/" + oid + "/token"
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{
		"iss": "bench.cqgate.test", "sub": "bench.cqgate.test", "aud": tokenURL,
		"exp": time.Now().Add(5 * time.Minute).Unix(), "jti": fmt.Sprint(time.Now().UnixNano()),
	})
	assertion := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString([]byte("unsigned"))
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertion},
		"scope":                 {"system/*.read"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("fhirstub: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body, err := do(hc, req)
	if err != nil {
		return "", err
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("fhirstub: token response has no access_token")
	}
	return tr.AccessToken, nil
}

func do(hc *http.Client, req *http.Request) ([]byte, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fhirstub: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxClientBody))
	if err != nil {
		return nil, fmt.Errorf("fhirstub: %s %s: reading body: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		// The stub's error bodies never hold a token.
		return nil, fmt.Errorf("fhirstub: %s %s: HTTP %d: %.200s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return body, nil
}
