package channel

import (
	"encoding/binary"
	"time"
)

// A persisted event's record (TableEvent, keyed by seq) is its frame, as
// watchers receive it, after the time it happened: a tag byte, the time
// in Unix milliseconds (8 bytes, big-endian), then the frame. Webhooks
// deliver that time as the event's "at". Records written before the time
// was kept are the bare frame, which starts with '{'; they read back with
// a zero time.
const eventRecTimed = 0x01

// eventRecHead is the length of what comes before the frame.
const eventRecHead = 9

// eventRecordHead appends what a record holds before its frame.
func eventRecordHead(b []byte, at time.Time) []byte {
	b = append(b, eventRecTimed)
	return binary.BigEndian.AppendUint64(b, uint64(at.UnixMilli()))
}

// splitEventRecord returns the frame and the time of a stored record.
func splitEventRecord(v []byte) ([]byte, time.Time) {
	if len(v) >= eventRecHead && v[0] == eventRecTimed {
		return v[eventRecHead:], time.UnixMilli(int64(binary.BigEndian.Uint64(v[1:eventRecHead]))).UTC()
	}
	return v, time.Time{}
}
