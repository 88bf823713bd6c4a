// Package scale synthesizes the remote side of cqgate at scale for the
// benchmarks: a Carequality R4 directory that knows every OID
// 2.999.<n>, and behind each organization a Cerner-shaped FHIR server
// whose CapabilityStatement advertises its token URLs in oauth-uris.
//
// Every organization is distinct and realistic in size: a name, an OID
// identifier, an address, and three contained Endpoints (FHIR R4 REST,
// XCPD and XCA), the FHIR one pointing at a base URL of its own. The
// URLs look like production ones (https, public names under
// scale.example), so that cqgate's SSRF checks pass without per-OID
// settings; a Server's HTTP client routes every request to one loopback
// httptest server, and HandlerTransport answers them in memory without
// any socket at all.
//
//	srv := scale.NewServer()
//	defer srv.Close()
//	dir := &directory.R4Client{BaseURL: scale.DirectoryURL, APIKey: "k", HTTPClient: srv.Client()}
//	disc := discovery.New(discovery.Config{HTTPClient: srv.Client()})
//
// The scale benchmarks live next to the code they measure and use this
// package: BenchmarkLookupWarm in directory/, BenchmarkDiscoverWarm in
// discovery/, BenchmarkResolveWarm and BenchmarkReuseWarm in tenant/.
// Each fills fresh caches with 10, 1,000 and 10,000 organizations
// (Server.FillCaches), reports the live heap per organization (B/org)
// and then the cost of looking up a random cached one (Picks). This
// package's own TestScaleMemory (with CQGATE_SCALE=1, or under -bench)
// prints the same heap figures side by side, and with
// CQGATE_SCALE_HEAPPROFILE=file writes the heap profile of 10,000 cached
// organizations, every allocation sampled, to see which fields cost what:
//
//	CQGATE_SCALE=1 CQGATE_SCALE_HEAPPROFILE=/tmp/heap.prof go test -run TestScaleMemory -v -o /tmp/scale.test ./bench/scale
//	go tool pprof -sample_index=inuse_space -top -lines /tmp/scale.test /tmp/heap.prof
package scale
