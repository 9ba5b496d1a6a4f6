package config

import "fmt"

// Metrics configures /metrics (docs/operations.md).
type Metrics struct {
	// TokenFile, when set, names a file holding a bearer token for
	// Prometheus: a scrape of /metrics (and /readyz?verbose's failure
	// reasons) carrying it ("Authorization: Bearer ...") is let in; read
	// again when the file changes. Either way an API token of a platform
	// admin or an auditor is let in too (action metrics.read), and every
	// other caller is refused and audited: the series name every team's
	// loops, which a team member may not list.
	TokenFile string `yaml:"tokenFile"`
	// Public serves /metrics and /readyz's reasons to whoever reaches the
	// HTTP listener, without a token (a scraper on a private network).
	Public bool `yaml:"public"`
	// MaxLoopSeries caps how many loops per-loop series are exposed for
	// (latency, lag, SLO state, cost); 0 = 2000.
	MaxLoopSeries int `yaml:"maxLoopSeries"`
}

// Log configures loopgate's logs.
type Log struct {
	// Format is "text" (the default: logfmt-style key=value) or "json".
	// `loopgate serve --log-format` overrides it.
	Format string `yaml:"format"`
}

// Log formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// validateOperations checks the metrics, log and reflection settings.
func (c *Config) validateOperations() []error {
	var errs []error
	if c.Metrics.MaxLoopSeries < 0 {
		errs = append(errs, fmt.Errorf("metrics.maxLoopSeries: %d: want a positive count (0 = 2000)", c.Metrics.MaxLoopSeries))
	}
	switch c.Log.Format {
	case "", LogText, LogJSON:
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	return errs
}
