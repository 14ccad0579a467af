package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// mountTmpfs mounts a tmpfs of size bytes at a fresh directory, unmounted
// at cleanup (after the processes started later are killed), or skips
// the test where mounting is not allowed.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): the full-disk test needs root and a mount namespace that allows it", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes path until the disk is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return
		}
	}
}

// TestFullDiskRefusesWritesAndRecovers runs a node on a small tmpfs and
// fills it: writes answer unavailable with retry_after_ms while reads go
// on, /readyz says why, the node logs the change once; once the space is
// freed, writes resume without a restart, and every acknowledged message
// is there. A node started on the full disk exits at once with a clear
// error; once there is room it starts and has them all.
func TestFullDiskRefusesWritesAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node process")
	}
	t.Parallel()
	disk := mountTmpfs(t, 48<<20)
	data := filepath.Join(disk, "data")
	args := []string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", data,
		"--failure-detection", "fast", "--disk-reserve", fmt.Sprint(8 << 20), "--node-name", "full"}
	p := startProc(t, args...)
	c := rawDialAddr(t, p.addr)
	c.connect("alice")
	c.write(`{"id":2,"op":"channel.create","args":{"id":"room","type":"standard"}}`)
	if m := c.reply(); m["result"] == nil {
		t.Fatalf("create: %v", m)
	}
	id := 10
	acked := map[string]bool{}
	send := func(cid string) map[string]any {
		id++
		c.write(fmt.Sprintf(`{"id":%d,"op":"message.send","args":{"channel":"room","client_id":%q,"text":"%s"}}`, id, cid, strings.Repeat("x", 200)))
		m := c.reply()
		if m["result"] != nil {
			acked[cid] = true
		}
		return m
	}
	for i := range 20 {
		if m := send(fmt.Sprintf("before-%d", i)); m["result"] == nil {
			t.Fatalf("send before the disk is full: %v", m)
		}
	}

	filler := filepath.Join(disk, "filler")
	fillDisk(t, filler)
	waitFor(t, 10*time.Second, "/readyz to say the disk is full", func() bool {
		status, body := httpDo(t, "GET", "http://"+p.addr+"/readyz", "")
		return status == http.StatusServiceUnavailable && strings.Contains(body, "disk full")
	})
	for i := range 5 {
		m := send(fmt.Sprintf("full-%d", i))
		e, _ := m["error"].(map[string]any)
		if errCode(m) != string(protocol.CodeUnavailable) || e["retry_after_ms"] == nil {
			t.Fatalf("send on a full disk: %v, want unavailable with retry_after_ms", m)
		}
	}
	// Reads go on.
	id++
	c.write(fmt.Sprintf(`{"id":%d,"op":"messages.history","args":{"channel":"room","limit":100}}`, id))
	if m := c.reply(); m["result"] == nil || len(m["result"].(map[string]any)["messages"].([]any)) < 20 {
		t.Fatalf("history on a full disk: %v", m)
	}
	// A new user connects: connect promises no stored profile (its
	// reply does not wait for the write, which fails), and it is answered
	// once: the next reply is the next request's.
	bob := rawDialAddr(t, p.addr)
	bob.write(`{"id":1,"op":"connect","args":{"user_id":"bob","name":"Bob"}}`)
	if m := bob.reply(); m["result"] == nil {
		t.Fatalf("a new user's connect on a full disk: %v", m)
	}
	bob.write(`{"id":2,"op":"me","args":{}}`)
	if m := bob.reply(); m["id"] != 2.0 {
		t.Fatalf("after connect on a full disk, %v, want the reply to request 2", m)
	}
	if _, body := httpDo(t, "GET", "http://"+p.addr+"/metrics", ""); !strings.Contains(body, "\nswitchboard_store_writable 0\n") {
		t.Error("/metrics does not show the store unwritable")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "/readyz to recover", func() bool {
		status, _ := httpDo(t, "GET", "http://"+p.addr+"/readyz", "")
		return status == http.StatusOK
	})
	for i := range 20 {
		if m := send(fmt.Sprintf("after-%d", i)); m["result"] == nil {
			t.Fatalf("send after space was freed: %v", m)
		}
	}
	checkAcked(t, p.addr, acked)
	// The profile a failed write lost is stored by the next connect.
	bob = rawDialAddr(t, p.addr)
	bob.write(`{"id":1,"op":"connect","args":{"user_id":"bob","name":"Bob"}}`)
	bob.reply()
	bob.write(`{"id":2,"op":"me","args":{}}`)
	if m := bob.reply(); m["id"] != 2.0 || !strings.Contains(fmt.Sprint(m["result"]), "created_at:") || !strings.Contains(fmt.Sprint(m["result"]), "name:Bob") {
		t.Fatalf("bob once the disk has room: %v", m)
	}
	log := readFile(p.logf)
	if n := strings.Count(log, "STORE REFUSES WRITES"); n != 1 {
		t.Errorf("the node logged the refusal %d times, want once:\n%s", n, log)
	}
	if n := strings.Count(log, "store takes writes again"); n != 1 {
		t.Errorf("the node logged the recovery %d times, want once", n)
	}

	// A node started on a full disk says so and exits.
	p.kill()
	fillDisk(t, filler)
	q, out, exited := tryStartProc(t, args...)
	if q != nil || !exited {
		t.Fatal("a node started on a full disk")
	}
	if !strings.Contains(out, "disk full") || !strings.Contains(out, "exit status 1") {
		t.Errorf("start on a full disk: %q", out)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	p = startProc(t, args...)
	checkAcked(t, p.addr, acked)
}

// checkAcked checks that every acknowledged message of room is in its
// history, once, with contiguous segments.
func checkAcked(t *testing.T, addr string, acked map[string]bool) {
	t.Helper()
	checkAckedIn(t, []string{"ws://" + addr + "/v1/ws"}, "room", acked)
}

// checkAckedIn is checkAcked of channel ch through the nodes at urls.
func checkAckedIn(t *testing.T, urls []string, ch string, acked map[string]bool) {
	t.Helper()
	cl := clusterClient(t, urls, "bob")
	seen := map[string]int{}
	for i, m := range allMessages(t, cl, ch) {
		if m.Segment != uint64(i+1) {
			t.Fatalf("message %d has segment %d", i, m.Segment)
		}
		seen[m.ClientID]++
	}
	for cid := range acked {
		if seen[cid] != 1 {
			t.Errorf("acknowledged %s is in the history %d times", cid, seen[cid])
		}
	}
}

// TestFullDiskLeaderHandsItsShardsOver runs three hosts, one of them on a
// small tmpfs, and fills that disk: the full host gossips it and hands
// every shard it leads to the others, so a channel it led takes writes
// again (through the full host's own gateway too) while its disk stays
// full; once the space is freed, it leads its shards again and every
// acknowledged message is there once.
func TestFullDiskLeaderHandsItsShardsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	disk := mountTmpfs(t, 64<<20)
	c := &testCluster{t: t, procs: map[string]*proc{}, dirs: map[string]string{"n1": filepath.Join(disk, "data")}}
	c.start("n1", "--disk-reserve", fmt.Sprint(8<<20))
	c.start("n2")
	c.start("n3")
	c.waitAlive(3)
	c.waitSettled("n1", "n2", "n3")

	ctx := ctxT(t)
	ch := channelOwnedBy("full", "n1", "n1", "n2", "n3")
	admin := adminClient(t, c.urls("n2", "n3"))
	if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	alice := clusterClient(t, c.urls("n1"), "alice")
	if _, err := alice.Join(ctx, ch); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	send := func(cid string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := alice.Send(sctx, protocol.SendArgs{Channel: ch, ClientID: cid, Text: "x"}); err != nil {
			t.Fatalf("send %s: %v", cid, err)
		}
		acked[cid] = true
	}
	send("before")

	filler := filepath.Join(disk, "filler")
	fillDisk(t, filler)
	full := time.Now()
	leads := func(v clusterView, node string) int {
		n := 0
		for _, sh := range v.Shards {
			if sh.Leader == node {
				n++
			}
		}
		return n
	}
	waitFor(t, 30*time.Second, "n1 to gossip a full disk and lead no shard", func() bool {
		v, err := c.view("n2")
		return err == nil && v.memberDiskFull("n1") && len(v.Shards) == int(DefaultShards) && leads(v, "n1") == 0
	})
	t.Logf("n1 led no shard %v after its disk filled", time.Since(full).Round(10*time.Millisecond))
	send("full") // n1's gateway, a shard n1 led: its new leader takes it
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.waitSettled("n1", "n2", "n3") // n1 leads its preferred shards again
	if v, err := c.view("n2"); err != nil || v.memberDiskFull("n1") {
		t.Fatalf("n1 still gossips a full disk: %v", err)
	}
	send("after")
	checkAckedIn(t, c.urls("n2", "n3"), ch, acked)
}

// TestUploadsKeepTheStoresReserve: uploads stop while the store still
// has its whole reserve free beyond the ballast — a 503 unavailable with
// Retry-After — so that files never bring the store to refuse writes;
// messages go on, and uploads resume once there is room again.
func TestUploadsKeepTheStoresReserve(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	disk := mountTmpfs(t, 128<<20) // Pebble preallocates about 36 MiB of log
	n := testNode(t, func(c *Config) {
		c.DataDir = filepath.Join(disk, "data")
		c.DiskReserve = 16 << 20 // an 8 MiB ballast, 8 MiB kept free; files keep 16 MiB
		c.Limits.MaxFileBytes = 4 << 20
	})
	file := make([]byte, 4<<20-100<<10)
	uploaded := 0
	for {
		status, body := upload(t, n, "Dev alice", "big.bin", "application/octet-stream", file)
		if status == http.StatusCreated {
			if uploaded++; uploaded > 30 {
				t.Fatalf("%d uploads of 4 MiB on a 128 MiB disk were accepted", uploaded)
			}
			continue
		}
		if status != http.StatusServiceUnavailable || errCode(body) != string(protocol.CodeUnavailable) {
			t.Fatalf("upload %d: %d %v, want 503 unavailable", uploaded+1, status, body)
		}
		break
	}
	if uploaded == 0 {
		t.Fatal("no upload was accepted on an empty disk")
	}
	free := n.store.DiskFree()
	t.Logf("%d uploads accepted, then refused with %d bytes free", uploaded, free)
	if free < 16<<20 || !n.store.Writable() {
		t.Fatalf("after %d uploads the disk has %d bytes free (files keep %d), store writable %v", uploaded, free, 16<<20, n.store.Writable())
	}
	if status, body := httpDo(t, "GET", "http://"+n.Addr()+"/readyz", ""); status != http.StatusOK {
		t.Fatalf("/readyz with uploads refused: %d %s", status, body)
	}
	c := dial(t, n, "alice")
	if _, _, err := c.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: "room", Type: protocol.TypeStandard}); err != nil {
		t.Fatalf("a channel after uploads were refused: %v", err)
	}
	if _, err := c.Send(ctxT(t), protocol.SendArgs{Channel: "room", ClientID: "m1", Text: "still here"}); err != nil {
		t.Fatalf("a message after uploads were refused: %v", err)
	}
	// An operator frees space: uploads resume.
	blobs, err := filepath.Glob(filepath.Join(disk, "data", "files", "*"))
	if err != nil || len(blobs) < 2 {
		t.Fatalf("blobs %v %v", blobs, err)
	}
	for _, b := range blobs[:2] {
		if err := os.Remove(b); err != nil {
			t.Fatal(err)
		}
	}
	if status, body := upload(t, n, "Dev alice", "again.bin", "application/octet-stream", file); status != http.StatusCreated {
		t.Fatalf("upload after space was freed: %d %v", status, body)
	}
}
