//go:build testhooks

package cluster

import "slices"

// claimSet holds the scope keys a node claims whatever placement says.
type claimSet []string

func (s claimSet) has(key string) bool { return slices.Contains(s, key) }

// ClaimScopes is fault injection, in builds with the testhooks tag only:
// the node configured by cfg routes these scope keys ("c/<channel>") to
// itself whatever its shard table says, as a node that believes it leads
// their shards would.
func ClaimScopes(cfg *Config, keys []string) { cfg.claims = keys }
