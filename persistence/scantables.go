package persistence

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// TableRange is one table's forward range of a scope, for ScanTables.
type TableRange struct {
	Table Table
	Range Range // forward and without a limit
}

// ScanTables reads rs, ranges of r's scope in tables that strictly
// increase, and returns their records, one slice per range: what a Scan
// of each would return. A ShardLog or a store view reads them with one
// iterator and seeks only when a range starts beyond the last key read,
// so a scope with no records costs one seek, not one per range (an
// actor's activation reads several tables of a scope that is most often
// new). Other Readers are read range by range.
func ScanTables(r Reader, rs []TableRange) ([][]Record, error) {
	for i, tr := range rs {
		if tr.Range.Reverse || tr.Range.Limit > 0 || (i > 0 && tr.Table <= rs[i-1].Table) {
			return nil, fmt.Errorf("%w: ScanTables takes forward ranges without a limit, one per table, tables in order", ErrInvalid)
		}
	}
	if ts, ok := r.(tablesScanner); ok {
		return ts.scanTables(rs)
	}
	out := make([][]Record, len(rs))
	for i, tr := range rs {
		recs, err := r.Scan(tr.Table, tr.Range)
		if err != nil {
			return nil, err
		}
		out[i] = recs
	}
	return out, nil
}

// tablesScanner is a Reader that reads ScanTables' ranges in one pass.
type tablesScanner interface {
	scanTables(rs []TableRange) ([][]Record, error)
}

func (v *view) scanTables(rs []TableRange) ([][]Record, error) {
	return v.s.scanTables(v.s.db, v.shard, v.sc, rs)
}

// scanTables implements ScanTables for a ShardLog: with entries pending
// on any of the tables it reads through them, as Scan does.
func (l *ShardLog) scanTables(rs []TableRange) ([][]Record, error) {
	tables := make([]Table, len(rs))
	for i, tr := range rs {
		tables[i] = tr.Table
	}
	rd, done, err := l.reader(tables...)
	if err != nil {
		return nil, err
	}
	defer done()
	return l.s.scanTables(rd, l.shard, l.sc, rs)
}

// scanTables reads rs (checked by ScanTables) with one iterator over the
// scope. The ranges' tables increase, so each range starts at or after
// where the previous one's keys end: the iterator seeks to a range only
// when its key is still below the range's start, and once it runs out
// of the scope's keys every later range is empty.
func (s *Store) scanTables(r pebble.Reader, shard uint32, sc Scope, rs []TableRange) ([][]Record, error) {
	if err := sc.check(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	lower, upper := sc.scopeBounds(shard)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make([][]Record, len(rs))
	valid, started := false, false
	for i, tr := range rs {
		lo, hi := sc.tableBounds(shard, tr.Table)
		prefixLen := len(lo)
		if tr.Range.After != nil {
			lo = append(sc.key(shard, tr.Table, tr.Range.After), 0) // strictly above
		}
		if tr.Range.Before != nil {
			hi = sc.key(shard, tr.Table, tr.Range.Before)
		}
		if !started || (valid && bytes.Compare(it.Key(), lo) < 0) {
			valid, started = it.SeekGE(lo), true
		}
		for ; valid && bytes.Compare(it.Key(), hi) < 0; valid = it.Next() {
			out[i] = append(out[i], Record{Key: bytes.Clone(it.Key()[prefixLen:]), Value: bytes.Clone(it.Value())})
		}
		if !valid {
			break // no keys of the scope are left: the later ranges are empty
		}
	}
	return out, it.Error()
}
