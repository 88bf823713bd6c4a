package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo-accept":
			w.Header().Set("X-Request-Id", "rid")
			_, _ = w.Write([]byte(r.Header.Get("Accept")))
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("x", 100)))
		case "/missing":
			http.NotFound(w, r)
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		}
	}))
	defer srv.Close()
	hdr := http.Header{"Accept": {"application/fhir+json"}}

	tests := []struct {
		path          string
		maxBody       int64
		wantStatus    int
		wantBody      string
		wantTruncated bool
	}{
		{"/echo-accept", 100, 200, "application/fhir+json", false},
		{"/big", 100, 200, strings.Repeat("x", 100), false},
		{"/big", 10, 200, strings.Repeat("x", 10), true},
		{"/missing", 100, 404, "404 page not found\n", false},
	}
	for _, tt := range tests {
		r, err := Get(context.Background(), srv.Client(), srv.URL+tt.path, hdr, tt.maxBody)
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if r.StatusCode != tt.wantStatus || string(r.Body) != tt.wantBody || r.Truncated != tt.wantTruncated || r.OK() != (tt.wantStatus == 200) {
			t.Errorf("%s max %d: got %d %q truncated=%v", tt.path, tt.maxBody, r.StatusCode, r.Body, r.Truncated)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	r, err := Get(ctx, srv.Client(), srv.URL+"/slow", nil, 10)
	if r != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v %v, want a nil response and a deadline error", r, err)
	}
}

func TestDescribeStatus(t *testing.T) {
	tests := []struct {
		code    int
		body    string
		secrets []string
		want    string
	}{
		{500, "", nil, "Internal Server Error"},
		{599, "", nil, "unexpected status"},
		{403, "bad key s3cr=t/+\n\tfor you", []string{"s3cr=t/+"}, "Forbidden: bad key REDACTED for you"},
		{403, "echo s3cr%3Dt%2F%2B", []string{"s3cr=t/+"}, "Forbidden: echo REDACTED"},
		{502, strings.Repeat("y", 1000), nil, "Bad Gateway: " + strings.Repeat("y", maxSnippet) + "..."},
	}
	for _, tt := range tests {
		if got := DescribeStatus(tt.code, []byte(tt.body), tt.secrets...).Error(); got != tt.want {
			t.Errorf("DescribeStatus(%d, %q) = %q, want %q", tt.code, tt.body, got, tt.want)
		}
	}
}
