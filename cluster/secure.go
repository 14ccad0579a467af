package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/switchboard-chat/switchboard/cluster/security"
)

// Securing the cluster's two ports: gossip is encrypted and authenticated
// with the cluster keys (memberlist's keyring), the actor transport with
// mutual TLS (security.Identity). Strangers are refused at both, and each
// is logged once per host and reason (security.Refusals).

// keyFileInterval is how often the key file is checked for change.
const keyFileInterval = time.Second

// maxKeyFile bounds what is read of a key file.
const maxKeyFile = 64 << 10

// initialKeys returns the gossip keys: Config.Keys, or the key file's.
func (c *Cluster) initialKeys() ([][]byte, error) {
	if c.cfg.KeyFile == "" {
		return c.cfg.Keys, nil
	}
	if len(c.cfg.Keys) > 0 {
		return nil, errors.New("cluster keys: give the keys or a key file, not both")
	}
	b, err := readKeyFile(c.cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	keys, err := security.ParseKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("cluster key file %s: %w", c.cfg.KeyFile, err)
	}
	c.keyFileRead = b
	return keys, nil
}

func readKeyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("cluster key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("cluster key file %s: %w", name, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("cluster key file %s: larger than %d bytes", name, maxKeyFile)
	}
	return b, nil
}

// keyFileLoop re-reads the key file every keyFileInterval and puts a
// changed set of keys in use. A file that cannot be used is reported once
// (per content) and the keys in use stay.
func (c *Cluster) keyFileLoop() {
	t := time.NewTicker(keyFileInterval)
	defer t.Stop()
	seen, lastErr := c.keyFileRead, "" // what New put in use
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		b, err := readKeyFile(c.cfg.KeyFile)
		if err == nil && bytes.Equal(b, seen) {
			continue
		}
		var keys [][]byte
		if err == nil {
			seen = b
			if keys, err = security.ParseKeys(string(b)); err == nil {
				err = c.SetKeys(keys)
			}
		}
		switch {
		case err == nil:
			lastErr = ""
		case err.Error() != lastErr:
			lastErr = err.Error()
			c.log.Error("the cluster key file changed but cannot be used; the keys in use stay", "file", c.cfg.KeyFile, "err", err)
		}
	}
}

// SetKeys replaces the gossip keys at run time, keys[0] becoming the one
// that encrypts. A node started without keys cannot take any: the others
// would stop understanding it mid-flight.
func (c *Cluster) SetKeys(keys [][]byte) error {
	if c.keyring == nil {
		return errors.New("this node started without cluster keys: turning encryption on needs a restart")
	}
	if len(keys) == 0 {
		return errors.New("no cluster key given")
	}
	old := c.keyring.GetKeys()
	if equalKeys(old, keys) {
		return nil
	}
	// Install the new keys first, then the primary, then drop the old:
	// at no moment does this node refuse a key a peer may still use.
	for _, k := range keys {
		if err := c.keyring.AddKey(k); err != nil {
			return err
		}
	}
	if err := c.keyring.UseKey(keys[0]); err != nil {
		return err
	}
	for _, k := range c.keyring.GetKeys() {
		if !containsKey(keys, k) {
			if err := c.keyring.RemoveKey(k); err != nil {
				return err
			}
		}
	}
	c.log.Info("cluster keys changed", "primary", security.KeyFingerprint(keys[0]), "keys", security.Fingerprints(keys),
		"before", security.Fingerprints(old))
	return nil
}

// Keys returns the gossip keys in use, the primary first (nil: none).
func (c *Cluster) Keys() [][]byte {
	if c.keyring == nil {
		return nil
	}
	return c.keyring.GetKeys()
}

func equalKeys(a, b [][]byte) bool {
	if len(a) != len(b) || !bytes.Equal(a[0], b[0]) {
		return false
	}
	for _, k := range b {
		if !containsKey(a, k) {
			return false
		}
	}
	return true
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// transportCredentials returns the transport's gRPC credentials (nil:
// plaintext).
func (c *Cluster) transportCredentials() credentials.TransportCredentials {
	if c.cfg.TLS == nil {
		return nil
	}
	return c.cfg.TLS.TransportCredentials(func(addr net.Addr, err error) {
		c.transportRefused.Refuse(addr.String(), err.Error())
	})
}

// Refused returns how many times a stranger was refused at the gossip port
// (wrong or missing cluster key, another cluster name) and at the
// transport's TLS handshake.
func (c *Cluster) Refused() (gossip, transport uint64) {
	return c.gossipRefused.Count(), c.transportRefused.Count()
}

// gossipRefusal reads why memberlist refused a peer from its log line.
func gossipRefusal(line string) (reason string, ok bool) {
	l := strings.ToLower(line)
	switch {
	case strings.Contains(l, "remote state is not encrypted"):
		return "it sent plaintext gossip: it has no cluster key (--cluster-key)", true
	case strings.Contains(l, "no installed keys could decrypt"):
		return "its gossip is encrypted with a key this node does not hold (--cluster-key)", true
	case strings.Contains(l, "encryption is not configured"):
		return "it sent encrypted gossip and this node has no cluster key (--cluster-key)", true
	case strings.Contains(l, "unacceptable label"):
		return "it belongs to a cluster of another name (--cluster-name)", true
	}
	return "", false
}

// joinHint explains a failed join whose error says the seed refused us.
func joinHint(err error) string {
	if err == nil {
		return ""
	}
	if _, ok := gossipRefusal(err.Error()); ok || strings.Contains(strings.ToLower(err.Error()), "decrypt") {
		return "the member refused this node: --cluster-key and --cluster-name must match the cluster's"
	}
	return ""
}

var fromRE = regexp.MustCompile(`from=(\S+)`)

// logWriter forwards memberlist's log lines to slog; refusals of strangers
// go to refused, which logs each host once per reason.
type logWriter struct {
	l       *slog.Logger
	refused *security.Refusals
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	if reason, ok := gossipRefusal(line); ok && w.refused != nil {
		from := "unknown"
		if m := fromRE.FindStringSubmatch(line); m != nil {
			from = m[1]
		}
		w.refused.Refuse(from, reason)
		w.l.Debug(line, "component", "memberlist")
		return len(p), nil
	}
	switch {
	case bytes.Contains(p, []byte("[ERR]")):
		w.l.Warn(line, "component", "memberlist")
	case bytes.Contains(p, []byte("[WARN]")):
		w.l.Info(line, "component", "memberlist")
	default:
		w.l.Debug(line, "component", "memberlist")
	}
	return len(p), nil
}
