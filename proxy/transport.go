package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/egress"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/tenant"
)

// authTransport sends the request serve built, bearer token included,
// and retries once with a new token when the FHIR server answers 401, if
// the body can be replayed; it follows redirects to other origins
// (follow).
type authTransport struct {
	// base sends every request, but for those of tenants allowed
	// private addresses when private is set (Config.Private).
	base, private http.RoundTripper
	creds         Credentials
	log           logrus.FieldLogger
}

// transport is the transport of rt's tenant, and the request to send
// through it: req itself, or for a tenant allowed private addresses
// without a pool of its own, a copy under a context that allows them.
func (t *authTransport) transport(req *http.Request, rt *route) (http.RoundTripper, *http.Request) {
	if !rt.tenant.AllowPrivate {
		return t.base, req
	}
	if t.private != nil {
		return t.private, req
	}
	return t.base, req.WithContext(rt.tenant.Context(req.Context()))
}

func (t *authTransport) roundTrip(req *http.Request, rt *route) (*http.Response, error) {
	if rt.token == nil && rt.download == nil {
		return nil, errNoRoute
	}
	var resp *http.Response
	var err error
	if rt.token == nil {
		// A bulk file or status URL on another party's origin: no
		// token, so no 401 retry either.
		resp, err = t.send(req, rt)
	} else {
		resp, err = t.authorized(req, rt)
	}
	if err != nil {
		return nil, err
	}
	return t.follow(req, resp, rt)
}

// refused tells the credentials that rt's token was refused.
func (t *authTransport) refused(rt *route) {
	t.creds.Refused(rt.tenant, rt.token)
}

// authorized sends req with the token and retries once after a 401.
func (t *authTransport) authorized(req *http.Request, rt *route) (*http.Response, error) {
	replay := req.GetBody
	replayable := req.Body == nil || req.Body == http.NoBody || replay != nil

	resp, err := t.send(req, rt)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if !replayable {
		// The body was streamed and is gone: the caller gets the 401, and
		// the refused token is not handed out again, so its retry works.
		t.refused(rt)
		return resp, nil
	}

	// The FHIR server refused the token: forget it, get a new one and try
	// once more. Refused is compare-and-delete, so a burst of 401s for the
	// same old token causes one exchange.
	t.refused(rt)
	fresh, err := t.creds.Token(req.Context(), rt.tenant)
	if err != nil {
		t.log.WithFields(logrus.Fields{"request_id": rt.requestID, "oid": rt.tenant.OID}).WithError(err).
			Warn("proxy: FHIR server refused the token and a new one could not be had")
		if errors.Is(err, assertion.ErrThrottled) {
			// Inside tokens.min_interval: the refusing request keeps the
			// upstream's 401 (later ones get the 503).
			return resp, nil
		}
		// cqgate could not get a new token (Vault, the signing key, the
		// token endpoint): say so, never pass the partner's 401 on as if
		// the caller had failed to authenticate.
		drain(resp.Body)
		return nil, err
	}
	rt.retryToken = fresh
	retry := req.Clone(req.Context())
	retry.Header.Set("Authorization", "Bearer "+fresh.AccessToken)
	if replay != nil {
		body, err := replay()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	drain(resp.Body)
	t.log.WithFields(logrus.Fields{"request_id": rt.requestID, "oid": rt.tenant.OID}).
		Info("proxy: FHIR server answered 401; retrying once with a new token")
	return t.send(retry, rt)
}

func (t *authTransport) send(req *http.Request, rt *route) (*http.Response, error) {
	base, out := t.transport(req, rt)
	resp, err := base.RoundTrip(out)
	if err != nil {
		return nil, rt.upstreamError(req.URL, err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// cqgate never asks for an upgrade (the caller's Upgrade header
		// is dropped), so a 101 is the tenant misbehaving: the
		// connection it offers would bypass cqgate.
		_ = resp.Body.Close()
		return nil, rt.upstreamError(req.URL, errUnsolicitedUpgrade)
	}
	return resp, nil
}

// follow decides what becomes of a redirect (301, 302, 303, 307, 308)
// so that no Location the caller gets leads around cqgate:
//
//   - one to a URL under the FHIR base is handed to the caller, its
//     Location made absolute so that the rewriter maps it to cqgate;
//   - any other, answered to a GET or HEAD (a bulk file in a storage
//     bucket, as Oracle Health answers; a page elsewhere on the
//     partner's origin), is followed by cqgate, up to maxRedirects hops,
//     each under the egress guard and never with the token or any
//     caller header beyond downloadHeaders: the caller gets the file and
//     never sees the storage URL;
//   - any other answered to another method is refused (502): cqgate
//     cannot repeat a write elsewhere for the caller, and hands out no
//     URL that leads around it.
//
// A sealed file link's redirects are all followed; a status link's are
// those of a FHIR request.
func (t *authTransport) follow(req *http.Request, resp *http.Response, rt *route) (*http.Response, error) {
	get := req.Method == http.MethodGet || req.Method == http.MethodHead
	for hop := 0; ; hop++ {
		if !isRedirect(resp.StatusCode) {
			return resp, nil
		}
		loc := resp.Header.Get("Location")
		if loc == "" {
			return resp, nil
		}
		u, err := req.URL.Parse(loc)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return resp, nil
		}
		if abs := u.String(); hop == 0 && (rt.download == nil || rt.download.Status) && rt.rw != nil && rt.rw.Mapper().Matches(abs) {
			resp.Header.Set("Location", abs)
			return resp, nil
		}
		if !get {
			drain(resp.Body)
			return nil, failure.Errorf(failure.UpstreamFailed,
				"proxy: the FHIR server of %s answered %d to %s with a Location outside its FHIR base (on %s), which cqgate does not hand out",
				rt.tenant.OID, resp.StatusCode, req.Method, tenant.Origin(u))
		}
		drain(resp.Body)
		u.User, u.Fragment, u.RawFragment = nil, "", ""
		if hop == maxRedirects {
			return nil, rt.upstreamError(u, errors.New("more than 3 redirects to other origins"))
		}
		// The refusal names the storage by its origin: its path and
		// signature never reach the caller.
		if err := egress.CheckURL(originOf(u), rt.tenant.AllowPrivate); err != nil {
			return nil, fmt.Errorf("proxy: redirect from the FHIR server of %s: %w", rt.tenant.OID, err)
		}
		next := (&http.Request{Method: req.Method, URL: u, Header: make(http.Header, len(downloadHeaders)), Host: u.Host}).WithContext(req.Context())
		for _, k := range downloadHeaders {
			if v := req.Header[k]; len(v) > 0 {
				next.Header[k] = v
			}
		}
		if resp, err = t.send(next, rt); err != nil {
			return nil, err
		}
		req = next
	}
}

var errUnsolicitedUpgrade = errors.New("answered 101 Switching Protocols, which cqgate did not ask for")

// originOf is u without its path, query, fragment and credentials.
func originOf(u *url.URL) *url.URL {
	return &url.URL{Scheme: u.Scheme, Host: u.Host}
}

func redactQuery(u *url.URL) string {
	c := *u
	c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = "", false, "", ""
	c.User = nil
	return c.String()
}

// drain reads a little of a discarded body so the connection can be
// reused, then closes it.
func drain(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	_ = body.Close()
}
