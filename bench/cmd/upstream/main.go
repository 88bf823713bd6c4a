// Command upstream runs the benchmark's stand-in directory, FHIR server and
// token endpoint (package bench/internal/fhirstub) on a loopback address.
//
//	upstream -listen 127.0.0.1:0 -addr-file /tmp/up.addr -delay 20ms -api-key KEY
//
// It writes the address it listens on to -addr-file once it accepts
// connections, serves the request counts at /_stats, and stops on SIGINT
// or SIGTERM, or after -max-lifetime.
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

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	addrFile := flag.String("addr-file", "", "write the listening address here once ready")
	delay := flag.Duration("delay", 0, "latency added to directory, metadata and token answers")
	apiKeyEnv := flag.String("api-key-env", "BENCH_DIRECTORY_API_KEY", "environment variable holding the directory API key (empty: none required)")
	prefix := flag.String("oid-prefix", fhirstub.DefaultOIDPrefix, "organizations whose OID starts with this exist")
	patientBytes := flag.Int("patient-bytes", fhirstub.DefaultPatientBytes, "approximate size of a Patient answer")
	lifetime := flag.Duration("max-lifetime", 30*time.Minute, "exit after this long, whatever happens")
	flag.Parse()
	if err := loopback.CheckAddr(*listen); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()

	stub := fhirstub.New(fhirstub.Config{
		OIDPrefix:    *prefix,
		APIKey:       os.Getenv(*apiKeyEnv),
		Delay:        *delay,
		PatientBytes: *patientBytes,
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           stub,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
