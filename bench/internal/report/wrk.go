package report

import (
	"bufio"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// WrkPrefix starts every line bench/pct.lua prints in wrk's done hook.
const WrkPrefix = "CQBENCH "

// ParseWrk reads the "CQBENCH key value" lines that bench/pct.lua prints
// at the end of a wrk run into r's measurement fields.
func ParseWrk(out string, r *Row) error {
	vals := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), WrkPrefix)
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			return fmt.Errorf("report: wrk line %q has no value", line)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return fmt.Errorf("report: wrk %s: bad value %q", k, v)
		}
		vals[k] = f
	}
	need := []string{"requests", "duration_us", "p50_us", "p75_us", "p90_us", "p99_us", "p99.9_us", "max_us",
		"errors_connect", "errors_read", "errors_write", "errors_status", "errors_timeout"}
	for _, k := range need {
		if _, ok := vals[k]; !ok {
			return fmt.Errorf("report: wrk output lacks %s (was it run with -s bench/pct.lua?)", k)
		}
	}
	us := func(k string) time.Duration { return time.Duration(vals[k] * float64(time.Microsecond)) }
	r.Requests = int64(vals["requests"])
	r.Duration = us("duration_us")
	r.P50, r.P75, r.P90, r.P99, r.P999, r.Max = us("p50_us"), us("p75_us"), us("p90_us"), us("p99_us"), us("p99.9_us"), us("max_us")
	r.Non2xx = int64(vals["errors_status"])
	r.SocketErrors = int64(vals["errors_connect"] + vals["errors_read"] + vals["errors_write"] + vals["errors_timeout"])
	return nil
}
