package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/internal/egress"
	"github.com/cqgate/cqgate/proxy/fhirurl"
	"github.com/cqgate/cqgate/tenant"
)

// statusHeaders are the headers of a 202 (the FHIR asynchronous request
// pattern's answer: a bulk export kick-off, or any request sent with
// Prefer: respond-async) that may name the job's status URL.
var statusHeaders = []string{"Content-Location", "Location"}

// sealStatus makes every status URL of a 202 lead back to cqgate. The
// rewriter (rt.rw, already run) mapped those under the FHIR base; one
// it left pointing elsewhere (another path on the partner's host,
// another host) becomes a sealed status link,
// {public}/fhir/{oid}/$cqgate-download/{sealed}, through which the
// caller polls (GET) and cancels (DELETE) the job (prepareDownload).
//
// A status URL cqgate cannot fetch (not http(s), with user information,
// refused by the egress guard, not a URL) is removed and the removal
// logged, naming the URL by its origin alone: the 202 still reaches the
// caller, since the job was started and refusing the answer would not
// stop it, but no URL that leads around cqgate goes with it.
func (p *Proxy) sealStatus(resp *http.Response, rt *route) error {
	if rt.rw == nil {
		return nil
	}
	for _, k := range statusHeaders {
		vs, ok := resp.Header[k]
		if !ok {
			continue
		}
		kept := vs[:0]
		for _, v := range vs {
			out, keep, err := p.statusLink(v, k, resp.Request.URL, rt)
			if err != nil {
				return err
			}
			if keep {
				kept = append(kept, out)
			}
		}
		if len(kept) == 0 {
			delete(resp.Header, k)
		} else {
			resp.Header[k] = kept
		}
	}
	return nil
}

// statusLink is what becomes of v, a status URL found in k (a 202's
// header, or "manifest link") of an answer to a request for from (a
// partner URL): v itself when it leads to cqgate
// already (mapped, or a relative reference that resolves against the
// caller's cqgate URL as it does against the partner's), the cqgate URL
// of a status URL under the FHIR base, or a sealed status link; keep is
// false when it is removed.
func (p *Proxy) statusLink(v, k string, from *url.URL, rt *route) (out string, keep bool, err error) {
	public := rt.rw.Mapper().PublicBase()
	v = fhirurl.ClientSlashes(v) // as the caller's client will read it
	if rt.rw.Mapper().Under(v) {
		return v, true, nil
	}
	ref, err := url.Parse(v)
	if err != nil {
		p.dropStatus(rt, k, "", "it cannot be parsed")
		return "", false, nil
	}
	if ref.Scheme == "" && ref.Host == "" && !strings.HasPrefix(v, "/") && rt.download == nil && !fhirurl.HasDotSegment(v) {
		// Relative to the request URL, which for the caller names
		// cqgate's mirror of it; the answer to a status link's request
		// is resolved against the status URL below, and so is one with
		// dot segments, which could climb out of /fhir/{oid}/ on
		// cqgate's side (then mapped only if it stays under the base).
		return v, true, nil
	}
	u := from.ResolveReference(ref)
	u.Fragment, u.RawFragment = "", ""
	if mapped, ok := rt.rw.Mapper().Map(u.String()); ok {
		return mapped, true, nil
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		p.dropStatus(rt, k, tenant.Origin(u), "it is not an absolute http(s) URL")
		return "", false, nil
	case u.User != nil:
		p.dropStatus(rt, k, tenant.Origin(u), "it carries user information")
		return "", false, nil
	}
	if err := egress.CheckURL(originOf(u), rt.tenant.AllowPrivate); err != nil {
		p.dropStatus(rt, k, tenant.Origin(u), err.Error())
		return "", false, nil
	}
	sealed, err := p.links.Seal(rt.tenant.OID, Link{URL: u.String(), Status: true})
	if err != nil {
		return "", false, err
	}
	return public + "/" + DownloadSegment + "/" + sealed, true, nil
}

// dropStatus logs the removal of a status URL cqgate cannot fetch (from
// where: a 202's header, or a manifest's link), naming it by its origin
// alone (its path and query may hold a job's secret or PHI).
func (p *Proxy) dropStatus(rt *route, where, origin, why string) {
	fields := logrus.Fields{"request_id": rt.requestID, "oid": rt.tenant.OID, "header": where}
	if origin != "" {
		fields["status_origin"] = origin
	}
	p.log.WithFields(fields).Warnf("proxy: the partner named a status URL cqgate cannot fetch in %s (%s); "+
		"it is removed from the answer, and cannot be polled through cqgate", where, why)
}
