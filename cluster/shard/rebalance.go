package shard

import (
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// maintain runs the loop's periodic work.
func (e *Engine) maintain(now time.Time) {}

// proposeConfChange proposes a change of g's configuration; the context
// describes the replicas it adds. One change is a simple change, several
// enter a joint configuration that raft leaves by itself.
func (e *Engine) proposeConfChange(g *group, changes []*pb.ConfChangeSingle, added []raftstore.ReplicaDesc) error {
	return g.rn.ProposeConfChange(&pb.ConfChangeV2{Changes: changes, Context: encodeReplicas(added)})
}

// addLearner proposes a new learner replica on node's store.
func (e *Engine) addLearner(g *group, node string, store uint64) (uint64, error) {
	id := g.st.Applied().NextReplicaID
	cc := []*pb.ConfChangeSingle{{Type: pb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: new(id)}}
	return id, e.proposeConfChange(g, cc, []raftstore.ReplicaDesc{{ID: id, Node: node, Store: store}})
}
