package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	warnUnknownEnv(os.Stderr, os.Environ())
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "cqgate:", err)
		}
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0) // the usage was asked for and printed
		}
		if len(os.Args) < 2 || commands[os.Args[1]] == "" {
			os.Exit(2)
		}
		os.Exit(1) // a command ran and failed
	}
}

type flags struct {
	configPath string
	dev        bool
	check      bool
	listen     string
	logLevel   string
}

// serverFlagSet is the server's flag set, filling f.
func serverFlagSet(f *flags, stderr io.Writer, lookup func(string) (string, bool)) *flag.FlagSet {
	fs := flag.NewFlagSet("cqgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defPath, _ := lookup("CQGATE_CONFIG")
	fs.StringVar(&f.configPath, "config", defPath, "YAML configuration file (env CQGATE_CONFIG)")
	fs.BoolVar(&f.dev, "dev", false, "run on the built-in sandbox tenant: no Vault, no internet")
	fs.BoolVar(&f.check, "check", false, "validate the configuration and exit")
	fs.StringVar(&f.listen, "listen", "", "listen address, overrides listen (e.g. 127.0.0.1:8080)")
	fs.StringVar(&f.logLevel, "log-level", "", "log level, overrides log_level")
	fs.Usage = func() { printUsage(fs.Output(), fs) }
	return fs
}

func parseFlags(args []string, stderr io.Writer, lookup func(string) (string, bool)) (*flags, error) {
	f := &flags{}
	fs := serverFlagSet(f, stderr, lookup)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return f, nil
}

// warnUnknownEnv warns about CQGATE_ variables cqgate does not read
// (a typo would otherwise fall back to a default silently).
func warnUnknownEnv(w io.Writer, environ []string) {
	for _, warning := range config.UnknownEnv(environ) {
		fmt.Fprintln(w, "cqgate: warning:", warning)
	}
}

// loadConfig layers the file, the environment and the flags. Unknown
// keys and malformed values in the file or the environment are returned
// as problems beside the configuration, for validate to report together
// with the semantic ones; err is set when there is nothing to validate.
func loadConfig(f *flags, lookup func(string) (string, bool)) (*config.Config, config.Problems, error) {
	cfg := config.Default()
	var problems config.Problems
	if f.configPath != "" {
		var err error
		if cfg, problems, err = config.Read(f.configPath); err != nil {
			return nil, nil, err
		}
	}
	var ve *config.ValidationError
	if err := config.ApplyEnv(cfg, lookup); errors.As(err, &ve) {
		problems = append(problems, ve.Problems...)
	} else if err != nil {
		return nil, nil, err
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if f.logLevel != "" {
		cfg.LogLevel = f.logLevel
	}
	return cfg, problems, nil
}

// validate reports the problems found while loading and Validate's in
// one error.
func validate(cfg *config.Config, loading config.Problems) error {
	var ve *config.ValidationError
	if err := cfg.Validate(); errors.As(err, &ve) {
		loading = append(loading, ve.Problems...)
	} else if err != nil {
		return err
	}
	// What the gateway would refuse at start (the Vault login's
	// credentials, the files it reads or opens), so that -check reports
	// it too and the start reports it all at once.
	loading = append(loading, gateway.Check(cfg)...)
	return loading.Err()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	if len(args) > 0 {
		switch args[0] {
		case "help":
			return helpCommand(args[1:], stdout, stderr, lookup)
		case "version":
			return versionCommand(args[1:], stdout, stderr)
		}
		if _, ok := commands[args[0]]; ok {
			return runCommand(ctx, args[0], args[1:], stdout, stderr, lookup)
		}
	}
	if wantsHelp(args) {
		printUsage(stdout, serverFlagSet(&flags{}, stderr, lookup))
		return nil
	}
	f, err := parseFlags(args, stderr, lookup)
	if err != nil {
		return err
	}
	// From here on a SIGHUP never ends the server (hangups).
	hup := notifyHangups()
	cfg, problems, err := loadConfig(f, lookup)
	if err != nil {
		return err
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetFormatter(&logrus.JSONFormatter{})
	routeLibraryLogs(log, cfg, lookup)
	stopHangups := make(chan struct{})
	defer close(stopHangups)
	go hup.handle(ctx, stopHangups, log)

	var opts gateway.Options
	if f.dev {
		stop, err := startDev(ctx, cfg, &opts, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := validate(cfg, problems); err != nil {
		return err
	}
	if f.check {
		fmt.Fprintln(stdout, "configuration is valid")
		return nil
	}
	level, _ := logrus.ParseLevel(cfg.LogLevel)
	log.SetLevel(level)
	opts.Logger = log
	applyMemoryLimit(cfg.Server.MemoryLimitMiB, lookup, debug.SetMemoryLimit, log)

	g, err := gateway.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer g.Close()
	ln, limitConns, err := gateway.Listen(cfg.Listen, cfg.Server, g.Metrics)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	scheme := "http"
	if g.TLS != nil {
		ln, scheme = tls.NewListener(ln, g.TLS.Config()), "https"
	}
	if f.dev {
		printDevBanner(stdout, ln.Addr().String())
	}
	var adminLn net.Listener
	if g.AdminHandler != nil {
		if adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			_ = ln.Close()
			return fmt.Errorf("listening on %s (admin.listen): %w", cfg.Admin.Listen, err)
		}
		log.WithField("url", "http://"+adminLn.Addr().String()).Info("cqgate: serving health, readiness and metrics on the admin listener")
	}
	go g.Warmup(ctx)
	hup.serve(&reloader{g: g, running: cfg, reread: func() (*config.Config, error) { return reread(f, lookup) }})
	log.WithField("url", scheme+"://"+ln.Addr().String()).Info("cqgate: serving")
	return serve(ctx, ln, adminLn, g, cfg, log, limitConns)
}

// serve serves the API on ln and, when adminLn is not nil, the admin
// router on it, until ctx ends; both then drain and stop together. If
// one fails, the other is stopped too.
func serve(ctx context.Context, ln, adminLn net.Listener, g *gateway.Gateway, cfg *config.Config, log logrus.FieldLogger, limitConns gateway.ServeOption) error {
	opts := []gateway.ServeOption{limitConns}
	if g.Metrics != nil {
		opts = append(opts, gateway.CountRefusals(g.Metrics))
	}
	if adminLn == nil {
		return gateway.Serve(ctx, ln, g.Handler, cfg.Server, log, opts...)
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return gateway.Serve(ctx, ln, g.Handler, cfg.Server, log, opts...) })
	eg.Go(func() error {
		return gateway.Serve(ctx, adminLn, g.AdminHandler, cfg.Server, log.WithField("listener", "admin"))
	})
	return eg.Wait()
}

// reread reads and validates the configuration again, as run does at
// start, for a SIGHUP. Dev mode's configuration is the sandbox's, made
// at start: it is not re-read.
func reread(f *flags, lookup func(string) (string, bool)) (*config.Config, error) {
	if f.dev {
		return nil, errors.New("dev mode points the configuration at the sandbox at start; restart to change it")
	}
	cfg, problems, err := loadConfig(f, lookup)
	if err != nil {
		return nil, err
	}
	if err := validate(cfg, problems); err != nil {
		return nil, err
	}
	return cfg, nil
}
