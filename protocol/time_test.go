package protocol

import (
	"encoding/json"
	"testing"
	"time"
)

func TestTimeJSON(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, `null`},
		{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), `"2026-03-01T12:00:00.000Z"`},
		{time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC), `"2026-03-01T12:00:00.123Z"`},
		{time.Date(2026, 3, 1, 13, 0, 0, 999999999, paris), `"2026-03-01T12:00:00.999Z"`},
		{time.Date(1999, 12, 31, 23, 59, 59, 1_000_000, time.UTC), `"1999-12-31T23:59:59.001Z"`},
	}
	for _, tt := range tests {
		for _, v := range []Time{{tt.in}, At(tt.in)} {
			b, err := json.Marshal(v)
			if err != nil || string(b) != tt.want {
				t.Errorf("Marshal(%v) = %s %v, want %s", v, b, err, tt.want)
			}
			var back Time
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if !back.Equal(At(tt.in).Time) || back.Location() != time.UTC && !back.IsZero() {
				t.Errorf("round trip of %v: %v", tt.in, back)
			}
		}
	}
	if at := At(time.Date(2026, 1, 1, 0, 0, 0, 1_999_999, paris)); at.Nanosecond() != 1_000_000 || at.Location() != time.UTC {
		t.Errorf("At: %v", at)
	}
	if !At(time.Time{}).IsZero() {
		t.Errorf("At of zero is not zero")
	}
}

// TestZeroTimeIsNull: an unset time is present, as null (the contract's
// objects always carry their fields).
func TestZeroTimeIsNull(t *testing.T) {
	b, _ := json.Marshal(Member{User: "u"})
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, f := range []string{"muted_until", "banned_until"} {
		if v, ok := m[f]; !ok || v != nil {
			t.Errorf("zero %s is %v (present %v) in %s, want null", f, v, ok, b)
		}
	}
}

func TestTimeUnmarshal(t *testing.T) {
	good := map[string]string{
		`"2026-03-01T12:00:00Z"`:                `2026-03-01T12:00:00.000Z`,
		`"2026-03-01T13:00:00.5+01:00"`:         `2026-03-01T12:00:00.500Z`,
		`"2026-03-01T12:00:00.123456789Z"`:      `2026-03-01T12:00:00.123Z`,
		`"2026-03-01T12:00:00.123456789-00:30"`: `2026-03-01T12:30:00.123Z`,
	}
	for in, want := range good {
		var v Time
		if err := json.Unmarshal([]byte(in), &v); err != nil || v.Format(TimeLayout) != want || v.Location() != time.UTC {
			t.Errorf("Unmarshal(%s) = %v %v, want %s", in, v, err, want)
		}
	}
	var v Time
	if err := json.Unmarshal([]byte(`null`), &v); err != nil || !v.IsZero() {
		t.Errorf("null: %v %v", v, err)
	}
	for _, bad := range []string{`""`, `"yesterday"`, `"2026-03-01"`, `"2026-03-01 12:00:00Z"`, `1700000000`, `true`, `"2026-13-01T12:00:00Z"`} {
		var v Time
		err := v.UnmarshalJSON([]byte(bad))
		if err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", bad, v)
			continue
		}
		if e, ok := err.(*Error); !ok || e.Code != CodeBadRequest {
			t.Errorf("Unmarshal(%s): %v, want bad_request", bad, err)
		}
	}
}
