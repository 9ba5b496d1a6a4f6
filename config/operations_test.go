package config

import (
	"strings"
	"testing"
)

func TestOperationsSettings(t *testing.T) {
	c, err := Load(write(t, `
clusters:
  - {name: eu-1, region: eu, bootstrapServers: [kafka-1:9092]}
metrics: {tokenFile: /etc/loopgate/metrics-token, maxLoopSeries: 500}
log: {format: json}
reflection: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.TokenFile != "/etc/loopgate/metrics-token" || c.Metrics.MaxLoopSeries != 500 || c.Log.Format != LogJSON || !c.Reflection {
		t.Errorf("operations settings not loaded: %+v %+v %v", c.Metrics, c.Log, c.Reflection)
	}
	if e := Embedded("data"); e.Reflection || e.Metrics.TokenFile != "" || e.Log.Format != "" {
		t.Errorf("the embedded default turns operations settings on: %+v %+v %v", e.Metrics, e.Log, e.Reflection)
	}
	_, err = Load(write(t, `
clusters:
  - {name: eu-1, region: eu, bootstrapServers: [kafka-1:9092]}
metrics: {maxLoopSeries: -1}
log: {format: xml}
`))
	for _, want := range []string{"metrics.maxLoopSeries", "log.format"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}
