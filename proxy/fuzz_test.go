package proxy

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParsePath checks that ParsePath never panics and that whatever it
// accepts stays under the tenant's FHIR base however it is read: as
// escaped text, decoded, cleaned, or resolved as a URL reference.
func FuzzParsePath(f *testing.F) {
	for _, seed := range []string{
		"", "/", "/Patient", "/Patient/", "/Patient/1316024", "/Patient/$everything",
		"/Observation?patient=1", "/Binary/abc%20def", "/Patient/1;version=2",
		"/Patient/../admin", "/./Patient", "/Patient/%2e%2e/x", "/Patient/%2E%2e", "/Patient/.%2e",
		"/Patient/..;/admin", "/Patient/%2e%2e;x=1", "/Patient/...", "/Patient/..%20",
		"/Patient/a%2fb", "/Patient/a%5Cb", `/Patient\..\admin`, "//evil.example/x", "/https://evil.example/x",
		"/Patient/%0d%0aX: 1", "/Patient/%00", "/Patient/%zz", "/Patient/%c0%ae%c0%ae", "/Patient/%ff",
		"Patient", "/" + strings.Repeat("a", 3000), "/Patient/?x", "/Patient/#frag", "/%",
	} {
		f.Add(seed)
	}
	const base = "https://tenant.example/beta/guid"
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ParsePath(in)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("ParsePath(%q): error %v does not wrap ErrBadPath", in, err)
			}
			if out != "" {
				t.Fatalf("ParsePath(%q) = %q with an error", in, out)
			}
			return
		}
		if out == "" {
			if in != "" && in != "/" {
				t.Fatalf("ParsePath(%q) accepted it as the base itself", in)
			}
			return
		}
		if out != in {
			t.Fatalf("ParsePath(%q) = %q: accepted paths are forwarded as given", in, out)
		}
		if !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || len(out) > maxPathLen {
			t.Fatalf("ParsePath accepted %q", out)
		}
		segs := strings.Split(out[1:], "/")
		for i, seg := range segs {
			if seg == "" && i != len(segs)-1 {
				t.Fatalf("ParsePath accepted an empty segment in %q", out)
			}
			dec, err := url.PathUnescape(seg)
			if err != nil {
				t.Fatalf("ParsePath accepted bad escaping in %q", out)
			}
			name, _, _ := strings.Cut(dec, ";")
			if name == "." || name == ".." || (name != "" && strings.Trim(name, ". ") == "" && strings.Contains(name, ".")) {
				t.Fatalf("ParsePath accepted a dot segment %q in %q", seg, out)
			}
			if strings.ContainsAny(dec, "/\\") || !utf8.ValidString(dec) {
				t.Fatalf("ParsePath accepted segment %q of %q", seg, out)
			}
			for _, r := range dec {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("ParsePath accepted a control character in %q", out)
				}
			}
		}

		// Joined as the rewrite does it: the escaped base path and the
		// escaped FHIR path. However a server reads the result, it is
		// the tenant's host and under its base.
		u, err := url.Parse(base + out)
		if err != nil {
			// '?' or '#' in the path would make a query or a fragment
			// of it, which the rewrite never does (it sets RawPath), but a
			// path the URL parser refuses must not be one cqgate sends.
			if strings.ContainsAny(out, "?#") {
				return
			}
			t.Fatalf("base+%q does not parse: %v", out, err)
		}
		if u.Host != "tenant.example" || u.User != nil {
			t.Fatalf("base+%q has host %q", out, u.Host)
		}
		if strings.ContainsAny(out, "?#") {
			return // the part after them is not path; checked above that host holds
		}
		for _, p := range []string{u.Path, path.Clean(u.Path), u.EscapedPath(), path.Clean(u.EscapedPath())} {
			if p != "/beta/guid" && !strings.HasPrefix(p, "/beta/guid/") {
				t.Fatalf("base+%q leaves the base: %q", out, p)
			}
		}
		ref, err := url.Parse("https://tenant.example/beta/guid/")
		if err != nil {
			t.Fatal(err)
		}
		if r := ref.ResolveReference(&url.URL{Path: u.Path}); r.Host != "tenant.example" || !strings.HasPrefix(r.Path, "/beta/guid") {
			t.Fatalf("base+%q resolves to %s", out, r)
		}
	})
}
