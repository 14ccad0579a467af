package persistence

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
)

// MemLog is an in-memory Log for tests of code that uses a Log. Entries are
// applied and acknowledged at once (synchronously, in Append); reads answer
// as the store does (memlog_test.go checks the two against each other).
type MemLog struct {
	mu     sync.Mutex // guards the fields below
	tables map[Table]map[string][]byte
	// appended counts entries applied, for tests that assert on writes.
	appended int
}

// NewMemLog returns an empty MemLog.
func NewMemLog() *MemLog { return &MemLog{tables: make(map[Table]map[string][]byte)} }

// Appended returns how many entries have been applied.
func (m *MemLog) Appended() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.appended
}

func (m *MemLog) Get(t Table, key []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.tables[t][string(key)]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (m *MemLog) Scan(t Table, r Range) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.tables[t] {
		if r.After != nil && bytes.Compare([]byte(k), r.After) <= 0 {
			continue
		}
		if r.Before != nil && bytes.Compare([]byte(k), r.Before) >= 0 {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if r.Reverse {
		slices.Reverse(keys)
	}
	if r.Limit > 0 && len(keys) > r.Limit {
		keys = keys[:r.Limit]
	}
	out := make([]Record, len(keys))
	for i, k := range keys {
		out[i] = Record{Key: []byte(k), Value: bytes.Clone(m.tables[t][k])}
	}
	return out, nil
}

func (m *MemLog) Append(e *Entry, done func(error)) { done(m.apply(e)) }

func (m *MemLog) apply(e *Entry) error {
	if e == nil {
		return fmt.Errorf("%w: nil entry", ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, op := range e.Ops {
		tab := m.table(op.Table)
		switch {
		case op.Delete && op.DeleteTo != nil:
			for k := range tab {
				if bytes.Compare([]byte(k), op.Key) >= 0 && bytes.Compare([]byte(k), op.DeleteTo) < 0 {
					delete(tab, k)
				}
			}
		case op.Delete:
			delete(tab, string(op.Key))
		default:
			tab[string(op.Key)] = bytes.Clone(op.Value)
		}
	}
	m.appended++
	return nil
}

// table returns table t, creating it. m.mu must be held.
func (m *MemLog) table(t Table) map[string][]byte {
	tab := m.tables[t]
	if tab == nil {
		tab = make(map[string][]byte)
		m.tables[t] = tab
	}
	return tab
}
