package api

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/tenant"
)

// directory serves GET /directory/Organization/{oid}: what the directory
// and discovery know about an organization.
func (h *handlers) directory(c *gin.Context) {
	oid, err := directory.ParseOID(c.Param("oid"))
	if err != nil {
		h.fail(c, "", err)
		return
	}
	c.Set(oidKey, oid)
	if err := h.mayLookUp(c, oid); err != nil {
		h.fail(c, "", err)
		return
	}
	t, err := h.Tenants.Describe(c.Request.Context(), oid)
	if err != nil {
		h.fail(c, oid, err)
		return
	}
	if t.DirectoryStale {
		c.Header(StaleHeader, "directory")
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, t)
}

// mayLookUp applies the caller's policy to reading what the directory
// says of oid, as to a GET to the organization: a caller sees only the
// organizations it may reach, by lookup or by search.
func (h *handlers) mayLookUp(c *gin.Context, oid string) error {
	if h.Policy == nil {
		return nil
	}
	id, _ := c.Get(callerKey)
	req := callerauth.Request{OID: oid, Method: http.MethodGet, Scope: h.Tenants.Scope(oid)}
	return h.Policy.Authorize(id.(*callerauth.Identity), req)
}

var errNoSearch = failure.New(failure.NotImplemented, "api: no directory is configured to search (directory.url)")

// SearchResult is the answer to a directory search: one page of
// organizations summarized as the lookup describes them (without token
// URLs, which would take a discovery per organization).
type SearchResult struct {
	// Total is the number of matches, -1 when the directory does not say.
	Total         int              `json:"total"`
	Organizations []*tenant.Tenant `json:"organizations"`
	// Next is the URL of the next page relative to the search's own
	// ("Organization?page=…"), absent on the last one.
	Next string `json:"next,omitempty"`
}

// search serves GET /directory/Organization?name=&_id=&active=&_count=:
// a directory search, paged with the opaque page parameter of Next, of
// the organizations the caller's policy lets it reach (mayLookUp).
func (h *handlers) search(c *gin.Context) {
	if h.Directory == nil {
		h.fail(c, "", errNoSearch)
		return
	}
	q, err := searchQuery(c.Request.URL.Query())
	if err != nil {
		h.fail(c, "", err)
		return
	}
	if q.ID != "" {
		if err := h.mayLookUp(c, q.ID); err != nil {
			h.fail(c, "", err)
			return
		}
	}
	res, err := h.Directory.Search(c.Request.Context(), q)
	if err != nil {
		if kind, _ := outcome.Classify(err); kind == failure.Internal {
			// Whatever the directory client did not classify is still
			// the directory's failure, not cqgate's.
			err = failure.Errorf(failure.UpstreamFailed, "api: searching the directory: %w", err)
		}
		h.log.WithError(err).Warn("api: directory search failed")
		h.fail(c, "", err)
		return
	}
	out := SearchResult{Total: res.Total, Organizations: make([]*tenant.Tenant, 0, len(res.Organizations))}
	for _, org := range res.Organizations {
		if h.mayLookUp(c, org.OID) != nil {
			// Not the caller's to see; the directory's total counts
			// what it no longer sees, so there is none to give.
			out.Total = -1
			continue
		}
		out.Organizations = append(out.Organizations, tenant.Summary(org, h.FHIRVersions))
	}
	if res.Next != "" {
		// Relative to the search's own URL, so that it holds under a
		// path prefix cqgate does not know (an ingress serving it at
		// /cqgate/ without server.public_url) as under the root.
		out.Next = "Organization?" + url.Values{"page": {res.Next}}.Encode()
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// searchQuery reads a search's parameters; an unknown one is a 400, so a
// typo does not silently widen a search.
func searchQuery(v url.Values) (directory.Query, error) {
	var q directory.Query
	for name, vals := range v {
		if len(vals) != 1 {
			return q, failure.Errorf(failure.Invalid, "api: search parameter %s given %d times", name, len(vals))
		}
		val := vals[0]
		switch name {
		case "name":
			q.Name = val
		case "_id":
			oid, err := directory.ParseOID(val)
			if err != nil {
				return q, err
			}
			q.ID = oid
		case "active":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return q, failure.Errorf(failure.Malformed, "api: active=%q must be true or false", val)
			}
			q.Active = &b
		case "_count":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > directory.MaxPageSize {
				return q, failure.Errorf(failure.Malformed, "api: _count=%q must be a number from 1 to %d", val, directory.MaxPageSize)
			}
			q.Count = n
		case "page":
			q.Page = val
		default:
			return q, failure.Errorf(failure.Unsupported, "api: unknown search parameter %q; use name, _id, active, _count or page", name)
		}
	}
	if q.Name == "" && q.ID == "" && q.Page == "" {
		return q, failure.Errorf(failure.Required, "api: a directory search needs name or _id")
	}
	return q, nil
}
