// Command upstream runs the benchmark's stand-in directory, FHIR server and
// token endpoint (package bench/internal/fhirstub) on a loopback address.
//
//	upstream -listen 127.0.0.1:0 -addr-file /tmp/up.addr -delay 20ms -api-key KEY
//
// It writes the address it listens on to -addr-file once it accepts
// connections, serves the request counts at /_stats, and stops on SIGINT
// or SIGTERM, or after -max-lifetime. With -fhir-hosts N it also listens
// on N more loopback ports and the directory spreads the organizations'
// FHIR servers (and their token endpoints) over them: N partner hosts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
	"github.com/cqgate/cqgate/bench/internal/loopback"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(2)
	}
}

// maxFHIRHosts bounds -fhir-hosts (a listener, and file descriptors, each).
const maxFHIRHosts = 10000

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	addrFile := flag.String("addr-file", "", "write the listening address here once ready")
	delay := flag.Duration("delay", 0, "latency added to directory, metadata and token answers")
	apiKeyEnv := flag.String("api-key-env", "BENCH_DIRECTORY_API_KEY", "environment variable holding the directory API key (empty: none required)")
	prefix := flag.String("oid-prefix", fhirstub.DefaultOIDPrefix, "organizations whose OID starts with this exist")
	patientBytes := flag.Int("patient-bytes", fhirstub.DefaultPatientBytes, "approximate size of a Patient answer")
	lifetime := flag.Duration("max-lifetime", 30*time.Minute, "exit after this long, whatever happens")
	fhirHosts := flag.Int("fhir-hosts", 0, "also listen on this many more loopback ports and spread the organizations' FHIR servers over them (0: all on -listen)")
	flag.Parse()
	if err := loopback.CheckAddr(*listen); err != nil {
		return err
	}
	if *fhirHosts < 0 || *fhirHosts > maxFHIRHosts {
		return fmt.Errorf("-fhir-hosts %d: want 0 to %d", *fhirHosts, maxFHIRHosts)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// The FHIR hosts: more ports on the same loopback address, each a
	// partner host of its own to a proxy's connection pool.
	more := make([]net.Listener, *fhirHosts)
	hosts := make([]string, *fhirHosts)
	for i := range more {
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		if more[i], err = net.Listen("tcp", net.JoinHostPort(host, "0")); err != nil {
			return fmt.Errorf("FHIR host %d of %d: %w", i+1, *fhirHosts, err)
		}
		hosts[i] = more[i].Addr().String()
	}
	stub := fhirstub.New(fhirstub.Config{
		OIDPrefix:    *prefix,
		APIKey:       os.Getenv(*apiKeyEnv),
		Delay:        *delay,
		PatientBytes: *patientBytes,
		FHIRHosts:    hosts,
	})
	srv := &http.Server{
		Handler:           stub,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1+len(more))
	for _, l := range append([]net.Listener{ln}, more...) {
		go func() { errc <- srv.Serve(l) }()
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(ln.Addr().String()), 0o644); err != nil {
			return err
		}
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
