package assertion

import (
	"context"
	"errors"

	"github.com/go-jose/go-jose/v4"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqgate/cqgate/internal/tracing"
)

// endExchange describes a finished Exchange on its span, if recorded: the
// token endpoint's status and OAuth error code, never its description,
// the assertion or the token.
func endExchange(span trace.Span, err error) { endOAuthCall(span, err, "exchange-failed") }

// endRegister describes a finished UDAP registration on its span, if
// recorded: the status and the RFC 7591 error code, never the software
// statement or the answer's description.
func endRegister(span trace.Span, err error) { endOAuthCall(span, err, "registration-failed") }

// oauthAnswer is implemented by the errors of an OAuth endpoint's answer
// (*RetrieveError, *RegistrationError).
type oauthAnswer interface {
	oauthAnswer() (status int, code string)
}

func (e *RetrieveError) oauthAnswer() (int, string)     { return e.StatusCode, e.ErrorCode }
func (e *RegistrationError) oauthAnswer() (int, string) { return e.StatusCode, e.ErrorCode }

// endOAuthCall ends span, describing err (if recorded) by the endpoint's
// status and error code, or by failed when it has none.
func endOAuthCall(span trace.Span, err error, failed string) {
	defer span.End()
	if !span.IsRecording() || err == nil {
		return
	}
	code := failed
	var oa oauthAnswer
	if errors.As(err, &oa) {
		status, ec := oa.oauthAnswer()
		if status != 0 {
			span.SetAttributes(tracing.HTTPStatusKey.Int(status))
		}
		if c := oauthCode(ec); c != "" {
			span.SetAttributes(tracing.OAuthErrorKey.String(c))
			code = c
		}
	}
	tracing.Fail(span, code)
}

// oauthCode is an OAuth error code as it may go into a span: RFC 6749's
// shape (lower-case letters, digits, "_", "-", "."), at most 64 bytes;
// anything else a partner sent is "other".
func oauthCode(c string) string {
	if c == "" {
		return ""
	}
	if len(c) > 64 {
		return "other"
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '_' || b == '-' || b == '.') {
			return "other"
		}
	}
	return c
}

// endSign describes a finished signing on its span, if recorded.
func endSign(span trace.Span, k *signingKey, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	if k != nil {
		span.SetAttributes(tracing.AlgorithmKey.String(string(k.alg)))
	}
	if err != nil {
		tracing.Fail(span, "sign-failed")
	}
}

// ContextSigner is a remote signer (Vault transit) that can take the
// context of the signing: its trace context goes with the request to the
// signer.
type ContextSigner interface {
	jose.OpaqueSigner
	SignPayloadContext(ctx context.Context, payload []byte, alg jose.SignatureAlgorithm) ([]byte, error)
}

// bindContext binds ctx to s when s can take one; go-jose asks an opaque
// signer for a signature without a context.
func bindContext(s jose.OpaqueSigner, ctx context.Context) jose.OpaqueSigner {
	if cs, ok := s.(ContextSigner); ok && ctx != nil {
		return boundSigner{ContextSigner: cs, ctx: ctx}
	}
	return s
}

type boundSigner struct {
	ContextSigner
	ctx context.Context
}

func (b boundSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	return b.SignPayloadContext(b.ctx, payload, alg)
}
