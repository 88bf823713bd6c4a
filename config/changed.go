package config

import (
	"reflect"
	"strings"
)

// Changed returns the keys whose values differ between a and b, as
// their YAML paths: "section.key" for a key of a section
// ("server.shutdown_timeout", "inbound.api_keys"), the top-level key
// otherwise ("listen", "organizations"), in the file's order. A SIGHUP
// reload says with it which of a re-read file's changes need a restart.
func Changed(a, b *Config) []string {
	var out []string
	changed(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "", 2, &out)
	return out
}

// changed appends the paths under prefix whose values differ, looking
// into structs down to depth levels.
func changed(a, b reflect.Value, prefix string, depth int, out *[]string) {
	t := a.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fa, fb := a.Field(i), b.Field(i)
		if reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			continue
		}
		if fa.Kind() == reflect.Struct && depth > 1 {
			changed(fa, fb, prefix+name+".", depth-1, out)
			continue
		}
		*out = append(*out, prefix+name)
	}
}
