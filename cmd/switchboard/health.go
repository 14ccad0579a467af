package main

// A node's health: /healthz and /readyz, and what it does when its store
// starts or stops taking writes.

import (
	"fmt"
	"net/http"
	"strings"
)

// healthRoutes registers /healthz (the process answers) and /readyz.
func (n *Node) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", n.readyz)
}

// storeWritable logs every change of whether the store takes writes (one
// line per change, however many writes it refuses meanwhile).
func (n *Node) storeWritable(err error) {
	if err != nil {
		n.log.Error("STORE REFUSES WRITES: writes answer unavailable, reads go on; they resume by themselves once the disk has room; this node hands its shard leaderships to nodes with room", "reason", err)
	} else {
		n.log.Info("store takes writes again")
	}
	n.pokeDisk()
}

// diskSpeedChanged logs the disk's turn slow or fast (diskspeed.go) and
// has it gossiped.
func (n *Node) diskSpeedChanged() {
	if n.diskSpeed.Slow() {
		n.log.Warn("the disk is slow: most fsynced raft writes took over " + slowWrite.String() + " for " + (slowWindows * n.diskSpeed.window).String() + "; this node hands its shard leaderships to nodes whose disks are not")
	} else {
		n.log.Info("the disk is fast again: this node may lead shards again")
	}
	n.pokeDisk()
}

// pokeDisk wakes gossipDisk to read the store's and the disk's state.
func (n *Node) pokeDisk() {
	select {
	case n.diskChanged <- struct{}{}:
	default: // a poke is pending: gossipDisk reads the latest state
	}
}

// gossipDisk tells the cluster whenever the store starts or stops
// refusing writes, or its disk turns slow or fast, so that shard
// leaderships move off this node meanwhile (cluster/shard/rebalance.go).
func (n *Node) gossipDisk() {
	full, slow := false, false
	for {
		if now := !n.store.Writable(); now != full {
			full = now
			if err := n.cl.SetDiskFull(full); err != nil {
				n.log.Warn("gossiping the store's state", "disk_full", full, "err", err)
			}
		}
		if now := n.diskSpeed.Slow(); now != slow {
			slow = now
			if err := n.cl.SetDiskSlow(slow); err != nil {
				n.log.Warn("gossiping the disk's speed", "disk_slow", slow, "err", err)
			}
		}
		select {
		case <-n.diskChanged:
		case <-n.stopWatch:
			return
		}
	}
}

// readyz serves GET /readyz: 503 while the node drains or closes, while
// a node started with --join has reached neither a seed nor any other
// member (it keeps trying in the background), while its store refuses
// writes (a full disk), and while its disk does not answer (a stalled
// raft write), with the reason.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case !n.ready.Load():
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	case !n.cl.Joined():
		http.Error(w, "not ready: no seed (--join) has answered yet", http.StatusServiceUnavailable)
	case n.host && !n.hosting.Load():
		http.Error(w, "not ready: waiting to learn the cluster's identity from a member", http.StatusServiceUnavailable)
	case n.store != nil && !n.store.Writable():
		http.Error(w, "not ready: "+strings.TrimPrefix(fmt.Sprint(n.store.WriteError()), "persistence: "), http.StatusServiceUnavailable)
	case n.stalled():
		http.Error(w, "not ready: the disk is not answering (a raft write has not finished); this node leads nothing until it does", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ready")
	}
}

// stalled reports whether the node's raft engine counts its disk as
// stalled (cluster/shard/stall.go).
func (n *Node) stalled() bool {
	r := n.repl.Load()
	return r != nil && r.engine.Stalled()
}
