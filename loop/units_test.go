package loop

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string // substring; "" means success
	}{
		{"72h", 259_200_000, ""},
		{"7d", 604_800_000, ""},
		{"30s", 30_000, ""},
		{"2s", 2_000, ""},
		{"500ms", 500, ""},
		{"5m", 300_000, ""},
		{"1w", 604_800_000, ""},
		{"1h30m", 5_400_000, ""},
		{"1.5s", 1_500, ""},
		{" 2s ", 2_000, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"72", 0, "has no unit"},
		{"1.5", 0, "has no unit"},
		{"72x", 0, `unknown unit "x"`},
		{"72 hours", 0, "not a duration"},
		{"h", 0, "not a duration"},
		{"-5s", 0, "must not be negative"},
		{"", 0, "is empty"},
		{"1.5ms", 0, "finer than a millisecond"},
		{"1..5s", 0, "not a duration"},
		{"inf", 0, "not a duration"},
		{"99999999999999999999w", 0, "too long"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseDuration(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseDuration(%q) = %d, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
	if _, err := ParseDuration("-1h"); !errors.Is(err, errNegative) {
		t.Errorf("negative duration error %v does not wrap errNegative", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"2MiB", 2_097_152, ""},
		{"600", 600, ""},
		{"600B", 600, ""},
		{"1KiB", 1_024, ""},
		{"1.5MiB", 1_572_864, ""},
		{"10MB", 10_000_000, ""},
		{"10kB", 10_000, ""},
		{"10KB", 10_000, ""},
		{"1GiB", 1 << 30, ""},
		{"2 MiB", 2_097_152, ""},
		{"1.1KiB", 1_126, ""}, // 1126.4 rounds to the nearest byte
		{"0", 0, ""},
		{"2mb", 0, `unknown unit "mb"`},
		{"2M", 0, `unknown unit "M"`},
		{"MiB", 0, "not a size"},
		{"-1KiB", 0, "must not be negative"},
		{"", 0, "is empty"},
		{"1.2.3MB", 0, "not a size"},
		{"99999999999TiB", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseSize(%q) = %d, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func TestFormatUnitsPickTheLargestExactUnitAndRoundTrip(t *testing.T) {
	durations := map[int64]string{
		0: "0", 1: "1ms", 500: "500ms", 1500: "1500ms", 2000: "2s", 90_000: "90s",
		300_000: "5m", 259_200_000: "3d", 90_000_000: "25h", 1_209_600_000: "14d",
	}
	for ms, want := range durations {
		got := FormatDuration(ms)
		if got != want {
			t.Errorf("FormatDuration(%d) = %q, want %q", ms, got, want)
		}
		back, err := ParseDuration(got)
		if err != nil || back != ms {
			t.Errorf("ParseDuration(FormatDuration(%d)) = %d, %v", ms, back, err)
		}
	}
	sizes := map[int64]string{
		0: "0", 600: "600", 1024: "1KiB", 2_097_152: "2MiB", 1_572_864: "1536KiB",
		10_000_000: "10MB", 1000: "1kB", 1 << 40: "1TiB", 1001: "1001",
	}
	for b, want := range sizes {
		got := FormatSize(b)
		if got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", b, got, want)
		}
		back, err := ParseSize(got)
		if err != nil || back != b {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", b, back, err)
		}
	}
}
