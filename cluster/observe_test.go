package cluster

import (
	"strconv"
	"testing"
	"time"
)

// TestMetadataUpdatesAreRead: a member that changes its metadata again and
// again is seen with the last of it. Under the race detector this also
// checks that nodes listed by memberlist are read only as it allows (their
// metadata changes under its lock).
func TestMetadataUpdatesAreRead(t *testing.T) {
	p := newPeer()
	ml := p.start(t, "a", "127.0.0.1:0")
	c := startCluster(t, nil, ml.LocalNode().Address())
	waitUntil(t, 10*time.Second, "a to be an alive member", func() bool { return stateOf(c, "a") == StateAlive })
	// Paced so that the refresh loop reads the member list between
	// updates (it does every 250 ms).
	pace := time.NewTicker(60 * time.Millisecond)
	defer pace.Stop()
	for i := range 20 {
		<-pace.C
		http := "127.0.0.1:" + strconv.Itoa(9000+i)
		p.mu.Lock()
		p.meta.HTTP = http
		p.mu.Unlock()
		if err := ml.UpdateNode(time.Second); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, "update "+strconv.Itoa(i)+" to arrive", func() bool {
			m, _ := c.View().Member("a")
			return m.Meta.HTTP == http
		})
	}
}
