// Command rewritebench measures what rewriting partner URLs costs
// through cqgate itself: a searchset Bundle of 1 MiB and of 100 MiB,
// generated as it is sent (never held in memory), every entry carrying
// three URLs under the partner's base, goes from an upstream on loopback
// through a cqgate process to a client that discards it. The same bytes
// go through twice, each time in a fresh cqgate process:
//
//   - pass: served as application/octet-stream, which cqgate passes on
//     untouched (plain pass-through, the baseline);
//   - rewrite: served as application/fhir+json, which cqgate rewrites
//     (proxy/fhirurl), every partner URL becoming a cqgate URL.
//
// For each it reads the cqgate process's CPU time (user + system, from
// /proc: the honest figure on a shared machine) per MiB and its peak
// resident set size (VmHWM). Target: rewrite ≤ 1.5× the pass CPU, peak
// RSS ≤ 64 MiB with the 100 MiB Bundle.
//
// Usage: rewritebench -cqgate PATH [-small 100] [-large 3]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cqgate/cqgate/bench/internal/proc"
	"github.com/cqgate/cqgate/bench/internal/setup"
)

const (
	oid      = "2.999.9.1"
	clientID = "bench.example.org"
	mib      = 1 << 20
)

func main() {
	bin := flag.String("cqgate", "", "cqgate binary (go build -o ... ./cmd/cqgate)")
	small := flag.Int("small", 100, "requests of the 1 MiB Bundle per mode")
	large := flag.Int("large", 3, "requests of the 100 MiB Bundle per mode")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: rewritebench -cqgate PATH [-small N] [-large N]")
		os.Exit(2)
	}
	if err := run(*bin, *small, *large); err != nil {
		fmt.Fprintln(os.Stderr, "rewritebench:", err)
		os.Exit(1)
	}
}

type result struct {
	mode           string
	cpuSmall       time.Duration // per MiB
	cpuLarge       time.Duration // per MiB
	wallLarge      time.Duration // per 100 MiB request
	hwm            int64
	rewrittenLinks bool
}

func run(bin string, small, large int) error {
	dir, err := os.MkdirTemp("", "rewritebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cert, key, err := setup.WriteSelfSigned(dir, clientID)
	if err != nil {
		return err
	}
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upURL := "http://" + up.Addr().String()
	srv := &http.Server{Handler: upstream(upURL + "/r4"), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(up)
	defer srv.Close()

	var results []result
	for _, mode := range []string{"pass", "rewrite"} {
		r, err := measure(bin, dir, cert, key, upURL, mode, small, large)
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		results = append(results, r)
	}
	pass, rw := results[0], results[1]
	fmt.Printf("%-8s %16s %16s %16s %14s\n", "mode", "1 MiB cpu/MiB", "100 MiB cpu/MiB", "100 MiB wall", "peak RSS")
	for _, r := range results {
		fmt.Printf("%-8s %13.2f ms %13.2f ms %13.0f ms %10.1f MiB\n", r.mode,
			ms(r.cpuSmall), ms(r.cpuLarge), ms(r.wallLarge), float64(r.hwm)/mib)
	}
	fmt.Printf("rewrite ÷ pass CPU: %.2f× at 1 MiB, %.2f× at 100 MiB (target ≤ 1.5×); peak RSS %.1f MiB (target ≤ 64 MiB)\n",
		float64(rw.cpuSmall)/float64(pass.cpuSmall), float64(rw.cpuLarge)/float64(pass.cpuLarge), float64(rw.hwm)/mib)
	if !rw.rewrittenLinks {
		return errors.New("the rewritten Bundle still carried the partner's URLs")
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measure starts a fresh cqgate, warms it, and measures the small and
// large Bundles in one mode.
func measure(bin, dir, cert, key, upURL, mode string, small, large int) (result, error) {
	res := result{mode: mode}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	listen := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, mode+".yaml")
	yaml := fmt.Sprintf(`listen: %q
log_level: warn
audit: {destination: none}
directory: {url: %q}
keys: {source: pem, pem: {certificate_file: %q, private_key_file: %q}}
client: {client_id: %q}
organizations:
  %q: {fhir_base: %q, token_url: %q, allow_private_addresses: true}
`, listen, upURL+"/dir", cert, key, clientID, oid, upURL+"/r4", upURL+"/token")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	gw := "http://" + listen
	if err := waitReady(gw); err != nil {
		return res, fmt.Errorf("%w\n%s", err, stderr.String())
	}
	ct := map[string]string{"pass": "octet", "rewrite": "json"}[mode]
	target := func(size int) string {
		return gw + "/fhir/" + oid + "/Observation?ct=" + ct + "&mib=" + strconv.Itoa(size)
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	if _, err := fetch(client, target(1), gw); err != nil { // warm: token, tenant
		return res, err
	}
	pid := cmd.Process.Pid
	cpu := func() time.Duration { s, _ := proc.Read(pid); return s.CPU }

	c0 := cpu()
	for range small {
		if _, err := fetch(client, target(1), gw); err != nil {
			return res, err
		}
	}
	c1 := cpu()
	res.cpuSmall = (c1 - c0) / time.Duration(small)
	start := time.Now()
	for range large {
		ok, err := fetch(client, target(100), gw)
		if err != nil {
			return res, err
		}
		res.rewrittenLinks = ok
	}
	res.wallLarge = time.Since(start) / time.Duration(large)
	c2 := cpu()
	res.cpuLarge = (c2 - c1) / time.Duration(large*100)
	s, err := proc.Read(pid)
	if err != nil {
		return res, err
	}
	res.hwm = s.HWM
	return res, nil
}

func waitReady(gw string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(gw + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("cqgate did not become ready")
}

// fetch reads the Bundle and reports whether its first next link leads
// to cqgate (it does when rewritten).
func fetch(c *http.Client, target, gw string) (bool, error) {
	resp, err := c.Get(target)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	head, _ := br.Peek(4 << 10)
	ok := bytes.Contains(head, []byte(`"url":"`+gw+"/fhir/"+oid+"/Observation"))
	_, err = io.Copy(io.Discard, br)
	return ok, err
}

// upstream is the partner: a token endpoint and a searchset Bundle of
// ?mib= MiB, streamed as it is generated.
func upstream(base string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"bench-token","token_type":"Bearer","expires_in":3600}`)
	})
	mux.HandleFunc("GET /r4/Observation", func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.Atoi(r.URL.Query().Get("mib"))
		if size <= 0 || size > 1024 {
			http.Error(w, "mib", http.StatusBadRequest)
			return
		}
		ct := "application/fhir+json"
		if r.URL.Query().Get("ct") == "octet" {
			ct = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ct)
		bw := bufio.NewWriterSize(w, 32<<10)
		writeBundle(bw, base, int64(size)*mib)
		bw.Flush()
	})
	return mux
}

// writeBundle writes a searchset of about n bytes; each entry has three
// URLs under base (fullUrl and two absolute references).
func writeBundle(w *bufio.Writer, base string, n int64) {
	var written int64
	put := func(s string) { m, _ := w.WriteString(s); written += int64(m) }
	put(`{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"` + base + `/Observation?_count=50"},` +
		`{"relation":"next","url":"` + base + `/Observation?_count=50&_offset=50"}],"entry":[`)
	pad := strings.Repeat("lorem ipsum dolor sit amet ", 10)
	for i := 0; written < n-600; i++ {
		if i > 0 {
			put(",")
		}
		id := strconv.Itoa(i)
		put(`{"fullUrl":"` + base + `/Observation/` + id + `","resource":{"resourceType":"Observation","id":"` + id +
			`","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},"subject":{"reference":"` +
			base + `/Patient/` + id + `"},"encounter":{"reference":"` + base + `/Encounter/` + id +
			`"},"valueQuantity":{"value":112,"unit":"mg/dL"},"note":[{"text":"` + pad + `"}]},"search":{"mode":"match"}}`)
	}
	put(`]}`)
}
