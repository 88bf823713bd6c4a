package setup

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// BareProxy is the baseline a user would write instead of deploying
// cqgate: an httputil.ReverseProxy to target that sets a fixed
// Authorization header. Its transport has the same settings as cqgate's
// (gateway.NewTransport), so that the comparison is of the work per
// request, not of connection pooling.
func BareProxy(target *url.URL, authorization string) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", authorization)
		},
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		},
	}
}
