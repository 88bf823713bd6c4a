package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/gateway"
)

// commands are the operator's debugging tools, by name: the synopsis of
// each. Each builds the gateway from the same configuration as the
// server, without serving. help and version (cli.go) build nothing.
var commands = map[string]string{
	"resolve":  "resolve <oid> [-json]: the whole resolution chain: directory entry, endpoint, each discovery source, token URL, algorithm",
	"assert":   "assert <oid>: the decoded header and claims of the client assertion that would be sent (never the signature)",
	"token":    "token <oid> [-show-token]: one token exchange; prints the token's metadata, the token itself only with -show-token",
	"register": "register <oid>: UDAP dynamic client registration; keeps the client id in Vault (udap.registrations; in memory with -dev)",
}

type commandFlags struct {
	flags
	json      bool
	showToken bool
	timeout   time.Duration
}

// commandFlagSet is the flag set of command name, filling f.
func commandFlagSet(name string, f *commandFlags, stderr io.Writer, lookup func(string) (string, bool)) *flag.FlagSet {
	fs := flag.NewFlagSet("cqgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	defPath, _ := lookup("CQGATE_CONFIG")
	fs.StringVar(&f.configPath, "config", defPath, "YAML configuration file (env CQGATE_CONFIG)")
	fs.BoolVar(&f.dev, "dev", false, "use the built-in sandbox tenant: no Vault, no internet")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
	switch name {
	case "resolve":
		fs.BoolVar(&f.json, "json", false, "print JSON")
	case "token":
		fs.BoolVar(&f.showToken, "show-token", false, "print the access token itself (it is a live credential)")
	}
	fs.Usage = func() { fmt.Fprintf(fs.Output(), "usage: cqgate %s\n", commands[name]); fs.PrintDefaults() }
	return fs
}

// parseCommand parses a command's flags, which may come before or after
// its one argument, the OID.
func parseCommand(name string, args []string, stderr io.Writer, lookup func(string) (string, bool)) (*commandFlags, string, error) {
	f := &commandFlags{}
	fs := commandFlagSet(name, f, stderr, lookup)
	var positional []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, "", err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fs.Usage()
		return nil, "", fmt.Errorf("%s takes exactly one OID, got %d arguments", name, len(positional))
	}
	return f, positional[0], nil
}

func runCommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	f, oid, err := parseCommand(name, args, stderr, lookup)
	if err != nil {
		return err
	}
	cfg, problems, err := loadConfig(&f.flags, lookup)
	if err != nil {
		return err
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetLevel(logrus.WarnLevel)
	routeLibraryLogs(log, cfg, lookup)

	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	opts := gateway.Options{Logger: log}
	if f.dev {
		stop, err := startDev(ctx, cfg, &opts, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	// A command serves nothing and leaves no audit trail of its own.
	cfg.Metrics.Enabled = false
	cfg.Audit.Destination = "none"
	cfg.Warmup.Organizations = nil
	if err := validate(cfg, problems); err != nil {
		return err
	}
	g, err := gateway.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer g.Close()

	switch name {
	case "resolve":
		return resolveCommand(ctx, g, oid, f.json, stdout)
	case "assert":
		_, p, err := g.PreviewAssertion(ctx, oid)
		if err != nil {
			return err
		}
		return printJSON(stdout, p)
	case "token":
		t, tok, err := g.Exchange(ctx, oid)
		if err != nil {
			return err
		}
		out := map[string]any{"oid": t.OID, "token_url": t.TokenURL, "client_id": t.ClientID, "token_type": tok.TokenType,
			"scope": tok.Scope, "expires_in": int64(tok.ExpiresIn.Seconds()), "expiry": tok.Expiry.UTC().Format(time.RFC3339)}
		if f.showToken {
			out["access_token"] = tok.AccessToken
		}
		return printJSON(stdout, out)
	case "register":
		t, reg, err := g.Register(ctx, oid)
		if err != nil {
			return err
		}
		return printJSON(stdout, map[string]any{"oid": t.OID, "registration_endpoint": t.RegistrationEndpoint,
			"client_id": reg.ClientID, "status": reg.StatusCode, "scope": reg.Scope})
	}
	return fmt.Errorf("unknown command %q", name)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// resolveCommand prints the resolution chain, for people or as JSON.
func resolveCommand(ctx context.Context, g *gateway.Gateway, oid string, asJSON bool, w io.Writer) error {
	r, err := g.Resolve(ctx, oid)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, r)
	}
	t := r.Tenant
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	active := "active"
	if !t.Active {
		active = "INACTIVE"
	}
	line("organization", "%s  %s  (%s)", t.OID, t.Name, active)
	src := fmt.Sprintf("%s, fetched %s", t.DirectorySource, t.CachedAt.UTC().Format(time.RFC3339))
	if t.DirectoryStale {
		src += "  STALE: " + t.StaleReason
	}
	line("directory", "%s", src)
	ep := t.FHIREndpoint
	if ep == nil {
		ep = &directory.Endpoint{}
	}
	line("FHIR endpoint", "%s  (%s %s %s)", t.FHIRBase, nonEmpty(ep.Transaction, ep.ConnectionType), ep.Version, ep.FHIRVersion)
	for _, other := range t.Endpoints {
		if other.Address != ep.Address {
			line("  other endpoint", "%s  (%s)", other.Address, nonEmpty(other.Transaction, other.ConnectionType))
		}
	}
	if t.TokenURLSource == "config" {
		line("discovery", "skipped: token_url is configured")
	}
	for _, a := range t.Discovery {
		detail := a.Outcome
		if a.Detail != "" {
			detail += " (" + a.Detail + ")"
		}
		if a.TokenURL != "" {
			detail += " -> " + a.TokenURL
		}
		line("  "+string(a.Source), "%s  %s", a.URL, detail)
	}
	if t.TokenURL != "" {
		line("token URL", "%s  (from %s)", t.TokenURL, t.TokenURLSource)
	} else {
		line("token URL", "NONE: %s", t.TokenURLError)
	}
	line("client", "%s  identity %s  scope %q", t.ClientID, t.Identity, t.Scope)
	if t.UDAP && t.B2B != nil {
		line("UDAP B2B", "yes: organization_id %s, purpose_of_use %s", t.B2B.OrganizationID, strings.Join(t.B2B.PurposeOfUse, " "))
	} else {
		line("UDAP B2B", "no")
	}
	accepts := "anything (the server does not say)"
	if len(t.SigningAlgorithms) > 0 {
		accepts = strings.Join(t.SigningAlgorithms, " ")
	}
	line("server accepts", "%s", accepts)
	if r.AlgorithmError != "" {
		line("algorithm", "NONE: %s", r.AlgorithmError)
	} else {
		line("algorithm", "%s  (key %s, certificate valid until %s)", r.Algorithm, r.KeyID, r.CertificateNotAfter.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func nonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
