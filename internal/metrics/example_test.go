package metrics_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"

	"github.com/cqgate/cqgate/internal/metrics"
)

func Example() {
	m := metrics.New()
	srv := httptest.NewServer(m.Handler()) // mount at metrics.path in the router
	defer srv.Close()

	// In the request path, once the OID resolved to a tenant:
	m.ObserveRequest("2.16.840.1.113883.3.13.1", "GET", 200)
	// And when it did not:
	m.ObserveRequest("", "GET", 404)
	m.TokenExchange(metrics.ExchangeSuccess)

	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "cqgate_requests_total") || strings.HasPrefix(line, `cqgate_token_exchanges_total{outcome="success"}`) {
			fmt.Println(line)
		}
	}
	// Output:
	// cqgate_requests_total{code_class="2xx",method="GET",org="2.16.840.1.113883.3.13.1"} 1
	// cqgate_requests_total{code_class="4xx",method="GET",org="unknown"} 1
	// cqgate_token_exchanges_total{outcome="success"} 1
}
