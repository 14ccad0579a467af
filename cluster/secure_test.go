package cluster

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/cluster/security"
)

// TestKeyFileRotates: a key file's new contents become the keys in use,
// the first as primary; contents that do not parse leave them; a node
// started without keys cannot take any.
func TestKeyFileRotates(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	k1, k2 := security.NewKey(), security.NewKey()
	if err := os.WriteFile(file, []byte(k1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Name: "a", KeyFile: file, Detection: DetectionFast, ClusterName: "test-" + t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := func(keys ...string) func() bool {
		return func() bool {
			got := c.Keys()
			if len(got) != len(keys) {
				return false
			}
			for i, k := range keys {
				parsed, _ := security.ParseKeys(k)
				if !bytes.Equal(got[i], parsed[0]) {
					return false
				}
			}
			return true
		}
	}
	for _, step := range [][]string{{k1, k2}, {k2, k1}, {k2}} {
		var b bytes.Buffer
		for _, k := range step {
			b.WriteString(k + "\n")
		}
		if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "the keys of the file", want(step...))
	}
	if err := os.WriteFile(file, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A bad file is reported and skipped: a valid one after it applies.
	if err := os.WriteFile(file, []byte(k1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the keys after a bad file", want(k1))
	if err := (&Cluster{}).SetKeys([][]byte{[]byte("0123456789abcdef")}); err == nil {
		t.Error("a node without keys took some")
	}
}

// TestGossipRefusalsAreRecognised: memberlist's lines about strangers are
// recognised, and a failed join caused by one says what to check.
func TestGossipRefusalsAreRecognised(t *testing.T) {
	for line, want := range map[string]bool{
		"[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=127.0.0.1:1": true,
		"[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:1":                true,
		"[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=127.0.0.1:1":            true,
		"[ERR] memberlist: failed to receive: remote state is encrypted and encryption is not configured from=1.2.3.4:5":   true,
		"[ERR] memberlist: discarding stream with unacceptable label \"x\": from=127.0.0.1:1":                              true,
		"[ERR] memberlist: Failed to send ping: write: connection refused":                                                 false,
	} {
		if _, ok := gossipRefusal(line); ok != want {
			t.Errorf("%q: %v", line, ok)
		}
	}
	if joinHint(errors.New("failed to join 127.0.0.1:1: remote state is encrypted and encryption is not configured")) == "" {
		t.Error("no hint for a refused join")
	}
	if joinHint(errors.New("dial tcp 127.0.0.1:1: connection refused")) != "" {
		t.Error("a hint for a seed that is down")
	}
}
