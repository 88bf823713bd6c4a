package directory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/bench/scale"
	"github.com/cqgate/cqgate/directory"
)

// Benchmarks of the directory's parsers and its cache, through the
// package's public API only. The parsers run on every directory answer
// (once per organization per cache TTL); the warm lookup runs on every
// FHIR request that is not served from tenant.Reuser.

// searchsetSize is the number of organizations in the synthetic search
// pages, about what a name search answers per page.
const searchsetSize = 20

func readTestdata(b *testing.B, name string) []byte {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// r4Searchset is an R4 searchset Bundle of n organizations, each the
// sphd fixture under its own OID and name.
func r4Searchset(b *testing.B, n int) []byte {
	b.Helper()
	var org map[string]any
	if err := json.Unmarshal(readTestdata(b, "sphd-r4-organization.json"), &org); err != nil {
		b.Fatal(err)
	}
	const oid = "2.16.840.1.113883.3.7204.1.2"
	entries := make([]any, 0, n)
	for i := range n {
		// Through JSON and back, with this organization's OID.
		one := strings.ReplaceAll(string(must(json.Marshal(org))), oid, fmt.Sprintf("2.16.840.1.113883.3.7204.1.%d", 100+i))
		one = strings.Replace(one, "Example Regional Health", fmt.Sprintf("Example Regional Health %d", i), 1)
		var res map[string]any
		if err := json.Unmarshal([]byte(one), &res); err != nil {
			b.Fatal(err)
		}
		entries = append(entries, map[string]any{
			"fullUrl":  "https://directory.stage.carequality.org/fhir/Organization/" + res["id"].(string),
			"resource": res,
			"search":   map[string]any{"mode": "match"},
		})
	}
	return must(json.Marshal(map[string]any{
		"resourceType": "Bundle",
		"type":         "searchset",
		"total":        1000,
		"link": []any{
			map[string]any{"relation": "self", "url": "https://directory.stage.carequality.org/fhir/Organization?name=health&_count=20"},
			map[string]any{"relation": "next", "url": "https://directory.stage.carequality.org/fhir?_getpages=7c1f0b2e-d1a4-4f38-9b77-0a5e3c2d9f61&_getpagesoffset=20&_count=20&_bundletype=searchset"},
		},
		"entry": entries,
	}))
}

// stu3Searchset is an STU3 XML searchset Bundle of n organizations, each
// the Cerner-shaped fixture under its own OID and name.
func stu3Searchset(b *testing.B, n int) []byte {
	b.Helper()
	doc := string(readTestdata(b, "cerner-stu3-organization.xml"))
	start := strings.Index(doc, "<Organization")
	if start < 0 {
		b.Fatal("no <Organization in the fixture")
	}
	org := strings.Replace(doc[start:], ` xmlns="http://hl7.org/fhir"`, "", 1)
	const oid = "2.16.840.1.113883.3.13.1"
	var s strings.Builder
	s.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<Bundle xmlns="http://hl7.org/fhir"><id value="6b1f8f3e-52c6-4d0e-9a8b-4f0b1b7d2c11"/><type value="searchset"/><total value="1000"/>`)
	s.WriteString(`<link><relation value="next"/><url value="https://stage-dir-ceq.sequoiaproject.org/fhir-stu3/1.0.1/Organization?_getpages=1&amp;_getpagesoffset=20&amp;_count=20"/></link>`)
	for i := range n {
		own := fmt.Sprintf("2.16.840.1.113883.3.13.%d", 100+i)
		one := strings.ReplaceAll(org, oid, own)
		one = strings.Replace(one, `<name value="Cerner Corporation"/>`, fmt.Sprintf(`<name value="Cerner Corporation %d"/>`, i), 1)
		fmt.Fprintf(&s, `<entry><fullUrl value="https://stage-dir-ceq.sequoiaproject.org/fhir-stu3/1.0.1/Organization/%s"/><resource>%s</resource><search><mode value="match"/></search></entry>`, own, one)
	}
	s.WriteString(`</Bundle>`)
	return []byte(s.String())
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkParseOrganization parses one directory read: the sphd-shaped
// R4 JSON fixture (five contained Endpoints, pretty-printed), the
// compact synthetic R4 Organization the scale study serves, and the
// Cerner-shaped STU3 XML fixture.
func BenchmarkParseOrganization(b *testing.B) {
	for _, bc := range []struct {
		name  string
		doc   []byte
		parse func([]byte) (*directory.Organization, error)
	}{
		{"R4-JSON/sphd-fixture", readTestdata(b, "sphd-r4-organization.json"), directory.ParseR4Organization},
		{"R4-JSON/synthetic", scale.Organization(1), directory.ParseR4Organization},
		{"STU3-XML/cerner-fixture", readTestdata(b, "cerner-stu3-organization.xml"), directory.ParseSTU3OrganizationXML},
	} {
		b.Run(bc.name, func(b *testing.B) {
			org, err := bc.parse(bc.doc)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := org.FHIREndpoint(); !ok {
				b.Fatalf("%s: no FHIR endpoint in %+v", bc.name, org)
			}
			b.SetBytes(int64(len(bc.doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.parse(bc.doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseSearchset parses one page of a directory search: 20
// organizations in an R4 JSON searchset Bundle and in an STU3 XML one.
func BenchmarkParseSearchset(b *testing.B) {
	for _, bc := range []struct {
		name  string
		doc   []byte
		parse func([]byte) (*directory.Bundle, error)
	}{
		{fmt.Sprintf("R4-JSON/orgs=%d", searchsetSize), r4Searchset(b, searchsetSize), directory.ParseR4Bundle},
		{fmt.Sprintf("STU3-XML/orgs=%d", searchsetSize), stu3Searchset(b, searchsetSize), directory.ParseSTU3BundleXML},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bundle, err := bc.parse(bc.doc)
			if err != nil {
				b.Fatal(err)
			}
			if len(bundle.Organizations) != searchsetSize || bundle.Next == "" {
				b.Fatalf("%s: %d organizations, next %q", bc.name, len(bundle.Organizations), bundle.Next)
			}
			b.SetBytes(int64(len(bc.doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.parse(bc.doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookupWarm is Resolver.Lookup of a random organization among
// orgs cached ones (filled through the real R4 client from a loopback
// server): the cost should not grow with the number cached. It also
// reports the live heap the cache holds per organization (B/org, from
// 1,000 organizations on).
func BenchmarkLookupWarm(b *testing.B) {
	for _, orgs := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("orgs=%d", orgs), func(b *testing.B) {
			srv := scale.NewServer()
			defer srv.Close()
			r := directory.NewResolver(directory.ResolverConfig{
				Fetcher: &directory.R4Client{BaseURL: scale.DirectoryURL, APIKey: "scale-directory-key", HTTPClient: srv.Client()},
			})
			ctx := context.Background()
			perOrg, err := srv.FillCaches(ctx, orgs, func(ctx context.Context, n int) error {
				_, err := r.Lookup(ctx, scale.OID(n))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			picks := scale.Picks(orgs, 1<<14)
			oids := make([]string, len(picks))
			for i, n := range picks {
				oids[i] = scale.OID(n)
			}
			mask := len(oids) - 1
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := r.Lookup(ctx, oids[i&mask]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.StopTimer()
			if reads, _, _ := srv.Counts(); reads != int64(orgs)+1 {
				b.Fatalf("%d directory reads for %d organizations: the lookups were not all warm", reads, orgs+1)
			}
			if orgs >= 1000 {
				b.ReportMetric(perOrg, "B/org")
			}
			runtime.KeepAlive(r)
		})
	}
}
