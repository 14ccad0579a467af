package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// switchboard import and export against a node: summaries, a dry run, a
// channel alone, a file byte for byte, refused lines and the exit status.
func TestExportImportCommands(t *testing.T) {
	g := genSpec{channels: 3, messages: 40, members: 4, users: 10, seed: 5}
	data := g.bytes(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	n, _ := apiNode(t)
	url := "http://" + n.Addr()
	msgs := g.records() - int64(g.users+g.channels*(1+g.members)) // 20 + 60 + 20
	counts := fmt.Sprintf("10 users, 3 channels, 12 members, %d messages", msgs)
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, _ := cli("import", "--url", url, "--api-key", apiKey, "--dry-run", in)
	if code != 0 || !strings.Contains(out, "would import "+counts+"; 0 skipped") {
		t.Fatalf("dry run: %d %q", code, out)
	}
	code, out, errs := cli("import", "--url", n.Addr(), "--api-key", apiKey, in)
	if code != 0 || !strings.Contains(out, "imported "+counts+"; 0 skipped (already there); 0 errors") {
		t.Fatalf("import: %d %q %q", code, out, errs)
	}
	code, out, _ = cli("import", "--url", url, "--api-key", apiKey, in)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("imported 0 users, 0 channels, 0 members, 0 messages; %d skipped", g.records())) {
		t.Fatalf("import again: %d %q", code, out)
	}
	exported := filepath.Join(dir, "out.ndjson")
	code, _, errs = cli("export", "--url", url, "--api-key", apiKey, "--out", exported)
	got, _ := os.ReadFile(exported)
	if code != 0 || !bytes.Equal(got, data) || !strings.Contains(errs, fmt.Sprintf("exported %d records (%s)", g.records(), counts)) {
		t.Fatalf("export: %d %q, same bytes: %v", code, errs, bytes.Equal(got, data))
	}
	code, out, _ = cli("export", "--url", url, "--api-key", apiKey, "--channel", "legacy-1")
	if lines := strings.Count(out, "\n"); code != 0 || lines != 1+4+g.size(1) || !strings.HasPrefix(out, `{"kind":"channel","id":"legacy-1"`) {
		t.Fatalf("export of one channel: %d, %d lines", code, lines)
	}
	code, _, errs = cli("export", "--url", url, "--api-key", apiKey, "--channel", "nope", "--out", filepath.Join(dir, "nope"))
	if _, err := os.Stat(filepath.Join(dir, "nope")); code != 1 || !strings.Contains(errs, "not_found") || err == nil {
		t.Fatalf("export of a missing channel: %d %q (file left: %v)", code, errs, err == nil)
	}
	bad := filepath.Join(dir, "bad.ndjson")
	_ = os.WriteFile(bad, []byte(`{"kind":"user","id":"zed"}`+"\n"+`{"kind":"nope"}`+"\n"), 0o644)
	code, out, errs = cli("import", "--url", url, "--api-key", apiKey, bad)
	if code != 1 || !strings.Contains(out, "line 2: bad_request: unknown kind") || !strings.Contains(errs, "1 lines refused") {
		t.Fatalf("bad lines: %d %q %q", code, out, errs)
	}
	if code, _, _ := cli("import", "--url", url, in); code != 1 {
		t.Errorf("no api key: %d", code)
	}
	if code, _, errs := cli("export", "--url", url, "--api-key", "wrong"); code != 1 || !strings.Contains(errs, "401") {
		t.Errorf("a wrong key: %d %q", code, errs)
	}
}
