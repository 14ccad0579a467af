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

// eventRecord returns the stored record of an event.
func eventRecord(at time.Time, frame []byte) []byte {
	b := make([]byte, 0, 9+len(frame))
	b = append(b, eventRecTimed)
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixMilli()))
	return append(b, frame...)
}

// splitEventRecord returns the frame and the time of a stored record.
func splitEventRecord(v []byte) ([]byte, time.Time) {
	if len(v) >= 9 && v[0] == eventRecTimed {
		return v[9:], time.UnixMilli(int64(binary.BigEndian.Uint64(v[1:9]))).UTC()
	}
	return v, time.Time{}
}
