package persistence

import (
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// ListScopes returns up to limit ids of the scopes of kind k held in the
// given shards' state here (a scope holds at least one record), in key
// order after the scope after ("": from the first). Key order is the
// order of the key layout within a shard: by id length, then byte by
// byte; the shards' lists are merged in that order. Each call is at most
// limit seeks per shard, so a caller pages through a store of any size
// without holding its ids.
func (s *Store) ListScopes(shards []uint32, k Kind, after string, limit int) ([]string, error) {
	if after != "" {
		if err := (Scope{Kind: k, ID: after}).check(); err != nil {
			return nil, err
		}
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []string
	for _, sh := range shards {
		ids, err := s.listShard(sh, k, after, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, ids...)
	}
	slices.SortFunc(out, func(a, b string) int {
		switch {
		case ScopeLess(a, b):
			return -1
		case ScopeLess(b, a):
			return 1
		}
		return 0
	})
	out = slices.Compact(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// listShard lists the scopes of kind k in one shard, after after.
func (s *Store) listShard(sh uint32, k Kind, after string, limit int) ([]string, error) {
	prefix := append(raftstore.StatePrefix(sh), byte(k))
	lower := prefix
	if after != "" {
		_, lower = Scope{Kind: k, ID: after}.scopeBounds(sh)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok && (limit <= 0 || len(out) < limit); {
		key := it.Key()[len(prefix):]
		if len(key) < 1 || len(key) < 1+int(key[0]) {
			return nil, fmt.Errorf("persistence: malformed key %q", it.Key())
		}
		sc := Scope{Kind: k, ID: string(key[1 : 1+int(key[0])])}
		out = append(out, sc.ID)
		_, upper := sc.scopeBounds(sh)
		ok = it.SeekGE(upper)
	}
	return out, it.Error()
}

// ScopeLess reports whether scope id a sorts before b in key order (see
// ListScopes): shorter ids first, then byte by byte.
func ScopeLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
