package memlimit

import (
	"errors"
	"testing"
)

func TestDecide(t *testing.T) {
	noFile := func(string) ([]byte, error) { return nil, errors.New("no such file") }
	file := func(s string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if p != cgroupMax {
				t.Fatalf("read %s", p)
			}
			return []byte(s), nil
		}
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	const mi = 1 << 20
	for _, tc := range []struct {
		name    string
		env     map[string]string
		read    func(string) ([]byte, error)
		want    int64
		src     Source
		wantErr bool
	}{
		{"GOMEMLIMIT wins", map[string]string{"GOMEMLIMIT": "100MiB", EnvLimit: "268435456"}, file("1000\n"), 0, SourceGOMEMLIMIT, false},
		{"downward API", map[string]string{EnvLimit: "268435456"}, file("max\n"), 256 * mi * 7 / 10, SourceEnv, false},
		{"downward API wins over cgroup", map[string]string{EnvLimit: "268435456"}, file("536870912\n"), 256 * mi * 7 / 10, SourceEnv, false},
		{"bad env", map[string]string{EnvLimit: "256Mi"}, noFile, 0, SourceEnv, true},
		{"zero env", map[string]string{EnvLimit: "0"}, noFile, 0, SourceEnv, true},
		{"cgroup", nil, file("536870912\n"), 512 * mi * 7 / 10, SourceCgroup, false},
		{"cgroup unlimited", nil, file("max\n"), 0, SourceNone, false},
		{"no cgroup", nil, noFile, 0, SourceNone, false},
		{"garbled cgroup", nil, file("lots"), 0, SourceCgroup, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, src, err := Decide(env(tc.env), tc.read)
			if (err != nil) != tc.wantErr || got != tc.want || src != tc.src {
				t.Fatalf("Decide = %d, %q, %v; want %d, %q, error %v", got, src, err, tc.want, tc.src, tc.wantErr)
			}
		})
	}
}
