package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/cqgate/cqgate/internal/buildinfo"
)

// commandOrder lists every subcommand in the order help shows them.
var commandOrder = []string{"resolve", "assert", "token", "register", "version", "help"}

// commandHelp explains each subcommand beyond its synopsis.
var commandHelp = map[string]string{
	"resolve": `Looks the organization up in the directory (or organizations.<oid>),
chooses its FHIR endpoint, tries each discovery source in discovery.order
and prints what each answered, the token URL that wins, the client id,
scope and UDAP context, and the algorithm the key would sign with. Makes
no token exchange. -json prints the same as JSON.`,
	"assert": `Signs the client assertion cqgate would send to the organization's
token URL and prints its decoded header (alg, typ, kid, x5c) and claims
(iss, sub, aud, iat, exp, jti). The signature is never printed.`,
	"token": `Makes one client_credentials exchange with the organization's token URL,
bypassing the cache, and prints the token type, scope and expiry. The
access token itself is a live credential: it is printed only with
-show-token.`,
	"register": `Registers cqgate with the organization's UDAP registration endpoint
(dynamic client registration with a software statement signed by the
certificate's key; udap.issuer must be a URI SAN of the certificate) and
keeps the client id it answers in Vault under udap.registrations.path.
With -dev it registers with the sandbox and keeps the client id in memory.`,
	"version": `Prints the version, VCS revision and commit time, and the Go version the
binary was built with (from the build information, or -ldflags -X
github.com/cqgate/cqgate/internal/buildinfo.version=...). -json prints JSON.`,
	"help": `Lists the commands, or explains one: cqgate help resolve.`,
}

// synopsis is a command's one-line usage.
func synopsis(name string) string {
	switch name {
	case "version":
		return "version [-json]: the version, VCS revision and Go version of this binary"
	case "help":
		return "help [command]: list the commands or explain one"
	}
	return commands[name]
}

// wantsHelp reports whether the server's arguments ask for help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--h", "--help":
			return true
		}
	}
	return false
}

// printUsage writes the overview: how to serve, every command, the
// server's flags.
func printUsage(w io.Writer, serverFlags *flag.FlagSet) {
	fmt.Fprint(w, `cqgate is the Carequality client-assertion gateway: a reverse proxy
/fhir/{oid}/{fhir-path} that finds the organization in the Carequality
directory, discovers its token URL, signs a client assertion with your
certificate's key, exchanges it for an access token and forwards the
request with it.

Usage:
  cqgate [flags]                      serve (-dev: on the built-in sandbox)
  cqgate <command> [flags] [args]     an operator command
  cqgate help <command>               explain a command

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, name := range commandOrder {
		args, what, _ := strings.Cut(synopsis(name), ": ")
		fmt.Fprintf(tw, "  %s\t%s\n", args, what)
	}
	_ = tw.Flush()
	fmt.Fprint(w, "\nEvery command but help and version takes -config FILE or -dev, and -timeout.\n\nFlags (serving):\n")
	serverFlags.SetOutput(w)
	serverFlags.PrintDefaults()
	fmt.Fprint(w, "\nConfiguration: a YAML file, then CQGATE_* environment variables, then flags;\nconfig.example.yaml documents every key.\n")
}

// helpCommand is cqgate help [command].
func helpCommand(args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	switch len(args) {
	case 0:
		printUsage(stdout, serverFlagSet(&flags{}, stderr, lookup))
		return nil
	case 1:
	default:
		return fmt.Errorf("help takes at most one command, got %v", args)
	}
	name := args[0]
	if !slices.Contains(commandOrder, name) {
		return fmt.Errorf("unknown command %q; the commands are %s", name, strings.Join(commandOrder, ", "))
	}
	args0, what, _ := strings.Cut(synopsis(name), ": ")
	fmt.Fprintf(stdout, "usage: cqgate %s\n\n%s.\n\n%s\n", args0, what, commandHelp[name])
	if _, ok := commands[name]; ok {
		fs := commandFlagSet(name, &commandFlags{}, stderr, lookup)
		fmt.Fprint(stdout, "\nFlags:\n")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	return nil
}

// versionCommand is cqgate version [-json].
func versionCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cqgate version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version takes no arguments, got %v", fs.Args())
	}
	in := buildinfo.Get()
	if *asJSON {
		return printJSON(stdout, in)
	}
	fmt.Fprintf(stdout, "cqgate %s\n  revision %s\n", in.Version, in.Revision)
	if in.Time != "" {
		fmt.Fprintf(stdout, "  time     %s\n", in.Time)
	}
	fmt.Fprintf(stdout, "  go       %s\n", in.GoVersion)
	return nil
}
