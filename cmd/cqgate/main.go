package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
	"github.com/cqgate/cqgate/keys"
	"github.com/cqgate/cqgate/sandbox"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "cqgate:", err)
		}
		os.Exit(2)
	}
}

type flags struct {
	configPath string
	dev        bool
	check      bool
	listen     string
	logLevel   string
}

func parseFlags(args []string, stderr io.Writer, lookup func(string) (string, bool)) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("cqgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defPath, _ := lookup("CQGATE_CONFIG")
	fs.StringVar(&f.configPath, "config", defPath, "YAML configuration file (env CQGATE_CONFIG)")
	fs.BoolVar(&f.dev, "dev", false, "run on the built-in sandbox tenant: no Vault, no internet")
	fs.BoolVar(&f.check, "check", false, "validate the configuration and exit")
	fs.StringVar(&f.listen, "listen", "", "listen address, overrides listen (e.g. 127.0.0.1:8080)")
	fs.StringVar(&f.logLevel, "log-level", "", "log level, overrides log_level")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return f, nil
}

// loadConfig layers the file, the environment and the flags.
func loadConfig(f *flags, lookup func(string) (string, bool)) (*config.Config, error) {
	cfg := config.Default()
	if f.configPath != "" {
		var err error
		if cfg, err = config.Load(f.configPath); err != nil {
			return nil, err
		}
	}
	if err := config.ApplyEnv(cfg, lookup); err != nil {
		return nil, err
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if f.logLevel != "" {
		cfg.LogLevel = f.logLevel
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	f, err := parseFlags(args, stderr, lookup)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(f, lookup)
	if err != nil {
		return err
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetFormatter(&logrus.JSONFormatter{})

	var opts gateway.Options
	if f.dev {
		sb, err := sandbox.Start(ctx, sandbox.Options{Logger: log.WithField("component", "sandbox")})
		if err != nil {
			return err
		}
		defer sb.Close()
		devConfig(cfg, sb)
		opts.Keys = keys.NewStatic(sb.Material)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if f.check {
		fmt.Fprintln(stdout, "configuration is valid")
		return nil
	}
	level, _ := logrus.ParseLevel(cfg.LogLevel)
	log.SetLevel(level)
	opts.Logger = log

	g, err := gateway.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	if f.dev {
		printDevBanner(stdout, ln.Addr().String())
	}
	return gateway.Serve(ctx, ln, g.Handler, cfg.Server, log)
}
