package persistence

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ListScopes returns up to limit ids of the scopes of kind k that this
// store serves (a live fence: owned by some activation here and not
// released), in key order after the scope after ("": from the first).
// Key order is the order of the key layout: by id length, then byte by
// byte. Each call is one seek per scope, so a caller pages through a
// store of any size without holding its ids.
func (s *Store) ListScopes(k Kind, after string, limit int) ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	lower := []byte{byte(k)}
	if after != "" {
		sc := Scope{Kind: k, ID: after}
		if err := sc.check(); err != nil {
			return nil, err
		}
		_, lower = sc.scopeBounds()
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd([]byte{byte(k)})})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok && (limit <= 0 || len(out) < limit); {
		key := it.Key()
		if len(key) < 2 || len(key) < 2+int(key[1]) {
			return nil, fmt.Errorf("persistence: malformed key %q", key)
		}
		sc := Scope{Kind: k, ID: string(key[2 : 2+int(key[1])])}
		fenceKey := sc.key(TableFence, nil)
		if it.SeekGE(fenceKey) && bytes.Equal(it.Key(), fenceKey) {
			if fs, ok := parseFence(it.Value()); ok && fs.epoch > 0 && !fs.released {
				out = append(out, sc.ID)
			}
		}
		_, upper := sc.scopeBounds()
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
