package shard

import "github.com/cespare/xxhash/v2"

// Placement is rendezvous (highest random weight) hashing: every candidate
// node gets a score from a 64-bit hash of its name and a key, and the
// highest scores win. Adding a node moves only the keys it now wins;
// removing one moves only its own. The hash is xxhash64 with a final
// avalanche mix, so node names that differ in one character (n1, n2,
// 127.0.0.1:7001, ...) spread evenly. Shards place their replicas with
// it, and scopes are spread over shards by the same mix.

// score is a node's weight for key.
func score(node, key string) uint64 {
	d := xxhash.New()
	d.WriteString(node)
	d.Write([]byte{0})
	d.WriteString(key)
	return mix(d.Sum64())
}

// mix is the splitmix64 finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Rank orders candidates for key, best first.
func Rank(candidates []string, key string) []string {
	out := make([]string, len(candidates))
	copy(out, candidates)
	scores := make(map[string]uint64, len(out))
	for _, n := range out {
		scores[n] = score(n, key)
	}
	// Insertion sort: candidate lists are small (cluster sizes).
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && less(scores, out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func less(scores map[string]uint64, a, b string) bool {
	if scores[a] != scores[b] {
		return scores[a] > scores[b]
	}
	return a < b
}

// Owner returns the best candidate for key, or "" when there is none.
func Owner(candidates []string, key string) string {
	best, bestScore := "", uint64(0)
	for _, n := range candidates {
		s := score(n, key)
		if best == "" || s > bestScore || (s == bestScore && n < best) {
			best, bestScore = n, s
		}
	}
	return best
}

// KeyShard returns the shard of a key among count shards. It must never
// change: data is placed by it.
func KeyShard(key string, count uint32) uint32 {
	if count == 0 {
		return 0
	}
	return uint32(mix(xxhash.Sum64String(key)) % uint64(count))
}
