package cluster

import (
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/shard"
)

// ScopeKey is the placement key of a virtual actor: the key its shard is
// derived from.
func ScopeKey(kind clusterpb.Kind, id string) string {
	switch kind {
	case clusterpb.Kind_KIND_USER:
		return "u/" + id
	default:
		return "c/" + id
	}
}

// Rank orders candidates for key by rendezvous hashing, best first.
func Rank(candidates []string, key string) []string { return shard.Rank(candidates, key) }

// Owner returns the best candidate for key by rendezvous hashing, or ""
// when there is none.
func Owner(candidates []string, key string) string { return shard.Owner(candidates, key) }

// ShardOf returns the shard of a placement key among count shards.
func ShardOf(key string, count uint32) uint32 { return shard.KeyShard(key, count) }
