package main

// The node's life once made: Run serves and drains it, Close stops it.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// serveHTTP serves srv on ln, over TLS when srv has a TLS config (its
// certificate comes from there).
func serveHTTP(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// Run serves until ctx ends, or the operator API asks for a drain, then
// drains the node (for up to DrainTimeout) and closes it.
func (n *Node) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- serveHTTP(n.srv, n.ln) }()
	if n.adminSrv != nil {
		go func() { errc <- serveHTTP(n.adminSrv, n.adminLn) }()
	}
	select {
	case err := <-n.fatal:
		n.log.Error("stopping", "err", err)
		n.Close()
		return err
	case <-ctx.Done():
	case <-n.drainReq:
		n.log.Info("draining, then exiting, as the operator API asked")
	case err := <-errc:
		n.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
	if n.cfg.DrainTimeout > 0 {
		dctx, cancel := context.WithTimeout(context.Background(), n.cfg.DrainTimeout)
		err := n.Drain(dctx)
		cancel()
		if err != nil {
			n.log.Warn("drain", "err", err)
		}
	}
	return n.Close()
}

// Close stops the node: sessions are closed (going away), the HTTP
// server, the cluster layer and actors stop, and the store is closed last
// so entries already appended still land. It is safe to call more than
// once.
func (n *Node) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.ready.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n.gw != nil {
		_ = n.gw.Close(ctx)
	}
	n.hooks.close() // before the actors it asks stop
	if n.srv != nil {
		_ = n.srv.Shutdown(ctx)
	}
	if n.ln != nil { // closed by Shutdown if it was served
		n.ln.Close()
	}
	if n.adminSrv != nil {
		_ = n.adminSrv.Shutdown(ctx)
	} else if n.adminLn != nil {
		n.adminLn.Close()
	}
	close(n.stop)
	n.bg.Wait()
	var stuck error // the engine did not stop: the store would wait for the same write
	if r := n.repl.Load(); r != nil {
		// Actors finish what their mailboxes hold (a session that just
		// ended is recorded) while the engine still replicates; then the
		// engine stops (failing what still waits) before the store closes.
		if h := r.host.Load(); h != nil {
			_ = n.cl.System().Root.PoisonFuture(h.PID).Wait()
		}
		stuck = n.storageStep("stopping replication", func() error { r.engine.Stop(); return nil })
	}
	if n.cl != nil {
		_ = n.cl.Close()
	}
	close(n.stopWatch)
	n.watchers.Wait()
	if n.peers != nil {
		n.peers.CloseIdle()
	}
	n.workers.Close() // nothing schedules on it any more
	if n.store == nil || stuck != nil {
		return stuck
	}
	return n.storageStep("closing the store", n.store.Close)
}

// storageStep runs fn, the raft engine's stop or the store's close,
// within StorageCloseTimeout. Both wait for the disk: the engine for its
// round's write, the store to write out its log. A disk that does not
// answer (docs/operations.md, "When the disk stops answering") would hold
// the process for ever, so past the bound the node goes on exiting
// without them, as a crash would: everything it acknowledged is on disk
// already, and the store's log replays at the next start.
func (n *Node) storageStep(what string, fn func() error) error {
	d := n.cfg.StorageCloseTimeout
	if d <= 0 {
		d = 10 * time.Second
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		n.log.Error("the disk is not answering (or far too slow): exiting without "+what+"; the store's log replays at the next start", "waited", d)
		return fmt.Errorf("%s did not finish within %s: the disk is not answering (or far too slow)", what, d)
	}
}
