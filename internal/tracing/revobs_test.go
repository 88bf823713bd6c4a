package tracing

import (
	"net/http"
	"testing"
)

// rev-obs: W3C Trace Context §3.3.1 "Multiple tracestate headers are
// allowed. Values from multiple headers in incoming requests SHOULD be
// combined in a single header according to RFC7230 and send further."
// README: the caller's traceparent (and tracestate) goes on with every
// request cqgate makes. Only the first tracestate header is read: the
// list-members of the others are lost.
func TestRevObsMultipleTracestateHeadersAreCombined(t *testing.T) {
	tr := propagating(t)
	in, _ := http.NewRequest(http.MethodGet, "https://cqgate.example/fhir/1.2.3/Patient", nil)
	in.Header["Traceparent"] = []string{"00-" + callerTraceID + "-" + callerSpanID + "-01"}
	in.Header["Tracestate"] = []string{"a=1", "b=2"}
	ctx, span := tr.StartRequestIn(new(Request), in)
	defer span.End()
	sent := &seen{}
	out, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://fhir.example.org/r4/Patient", nil)
	resp, err := tr.Transport(sent, "cqgate.upstream", CallFHIR).RoundTrip(out)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := sent.last(t).Get("Tracestate"); got != "a=1,b=2" {
		t.Errorf("tracestate %q sent for a caller's tracestate headers a=1 and b=2, want \"a=1,b=2\"", got)
	}
}
