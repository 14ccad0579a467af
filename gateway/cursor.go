package gateway

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// listCursor is a position in channels.list's order: newest last_activity
// first, ties by id.
type listCursor struct {
	at time.Time
	id string
}

func cursorOf(c *protocol.Channel) listCursor {
	at := c.LastActivity.Time
	if at.IsZero() {
		at = c.CreatedAt.Time
	}
	return listCursor{at: at, id: c.ID}
}

// before reports whether c sorts before d.
func (c listCursor) before(d listCursor) bool {
	if !c.at.Equal(d.at) {
		return c.at.After(d.at)
	}
	return c.id < d.id
}

// String encodes the cursor opaquely.
func (c listCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.at.UnixNano(), 10) + "|" + c.id))
}

func parseCursor(s string) (listCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return listCursor{}, false
	}
	at, id, ok := strings.Cut(string(b), "|")
	if !ok {
		return listCursor{}, false
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return listCursor{}, false
	}
	return listCursor{at: time.Unix(0, n), id: id}, true
}
