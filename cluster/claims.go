//go:build !testhooks

package cluster

// claimSet is empty in production builds: a node routes a scope to its
// shard's leader. Builds with the testhooks tag (the test binary of cmd/switchboard)
// can make a node claim scopes (claims_testhooks.go).
type claimSet struct{}

func (claimSet) has(string) bool { return false }
