package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// warm asks for every URL once and, when one is not answered 200,
// reports that one (not the cancellations it causes) and stops.
func TestWarm(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if strings.HasSuffix(r.URL.Path, "/bad") {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	urls := make([]string, 100)
	for i := range urls {
		urls[i] = srv.URL + "/org/" + strconv.Itoa(i)
	}
	if err := warm(context.Background(), urls); err != nil || n.Load() != 100 {
		t.Fatalf("err %v after %d requests, want none after 100", err, n.Load())
	}
	urls[50] = srv.URL + "/org/bad"
	err := warm(context.Background(), urls)
	if err == nil || !strings.Contains(err.Error(), "/org/bad: 502 Bad Gateway") || strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v, want the failing URL alone", err)
	}
}
