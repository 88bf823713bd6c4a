package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "CQGATE_"

// ApplyEnv overrides cfg from environment variables. Every scalar key has
// one, named CQGATE_ followed by its YAML path in upper case joined by
// underscores: directory.api_key is CQGATE_DIRECTORY_API_KEY,
// keys.vault.path is CQGATE_KEYS_VAULT_PATH. lookup is os.LookupEnv in
// production. A list takes comma-separated values. Every malformed value
// is reported, not just the first.
func ApplyEnv(cfg *Config, lookup func(string) (string, bool)) error {
	var problems Problems
	walkEnv(reflect.ValueOf(cfg).Elem(), EnvPrefix, func(name string, field reflect.Value) {
		raw, ok := lookup(name)
		if !ok {
			return
		}
		if err := setScalar(field, raw); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
	})
	return problems.Err()
}

// EnvNames lists every environment variable ApplyEnv reads, for docs and
// tests.
func EnvNames() []string {
	var names []string
	walkEnv(reflect.ValueOf(Default()).Elem(), EnvPrefix, func(name string, _ reflect.Value) {
		names = append(names, name)
	})
	return names
}

func walkEnv(v reflect.Value, prefix string, visit func(name string, field reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + strings.ToUpper(tag)
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.Struct:
			walkEnv(fv, name+"_", visit)
		case reflect.String, reflect.Int64, reflect.Int, reflect.Bool, reflect.Float64:
			visit(name, fv)
		case reflect.Slice:
			if fv.Type().Elem().Kind() == reflect.String {
				visit(name, fv)
			}
		}
	}
}

var durationType = reflect.TypeFor[time.Duration]()

func setScalar(field reflect.Value, raw string) error {
	raw = strings.TrimSpace(raw)
	switch {
	case field.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (like 30s or 5m): %q", raw)
		}
		field.SetInt(int64(d))
	case field.Kind() == reflect.String:
		field.SetString(raw)
	case field.Kind() == reflect.Slice:
		// A list is comma-separated: CQGATE_DISCOVERY_ORDER=udap,token
		var items []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		field.Set(reflect.ValueOf(items))
	case field.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", raw)
		}
		field.SetBool(b)
	case field.Kind() == reflect.Int64 || field.Kind() == reflect.Int:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", raw)
		}
		field.SetInt(n)
	case field.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", raw)
		}
		field.SetFloat(f)
	}
	return nil
}

// otherEnv are CQGATE_ variables cqgate reads that are not configuration
// keys.
var otherEnv = []string{"CQGATE_CONFIG"}

// UnknownEnv returns a warning for every CQGATE_ variable in environ
// (KEY=value entries, as os.Environ returns them) that cqgate does not
// read, naming the closest known variable when one is only a typo away.
// Values are never quoted: they may be secrets.
func UnknownEnv(environ []string) []string {
	known := append(EnvNames(), otherEnv...)
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || slices.Contains(known, name) {
			continue
		}
		w := name + " is not a cqgate setting and is ignored"
		if best := closest(name, known); best != "" {
			w += "; did you mean " + best + "?"
		}
		warnings = append(warnings, w)
	}
	slices.Sort(warnings)
	return warnings
}

// closest returns the name in known nearest to name by edit distance,
// when it is near enough to be a typo: at most two edits, or a fifth of
// the name for long names.
func closest(name string, known []string) string {
	best, bestDist := "", max(2, len(name)/5)+1
	for _, k := range known {
		if d := levenshtein.ComputeDistance(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}
