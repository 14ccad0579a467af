package protocol

import "strconv"

// MarshalJSON writes u as AppendUser does.
func (u User) MarshalJSON() ([]byte, error) {
	return AppendUser(make([]byte, 0, 160+len(u.Name)+len(u.Description)+len(u.Image)+len(u.Metadata)), &u), nil
}

// AppendUser appends u as encoding/json writes it by reflection, byte for
// byte, without reflection: every connect encodes the user object (its
// stored profile too, on a first login).
func AppendUser(dst []byte, u *User) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, u.ID)
	dst = append(dst, `,"name":`...)
	dst = AppendString(dst, u.Name)
	dst = append(dst, `,"description":`...)
	dst = AppendString(dst, u.Description)
	dst = append(dst, `,"image":`...)
	dst = AppendString(dst, u.Image)
	dst = append(dst, `,"metadata":`...)
	dst = appendRawOrNull(dst, u.Metadata)
	dst = append(dst, `,"status":`...)
	dst = AppendString(dst, u.Status)
	dst = append(dst, `,"last_seen":`...)
	dst = appendTime(dst, u.LastSeen)
	if u.Admin {
		dst = append(dst, `,"admin":`...)
		dst = strconv.AppendBool(dst, u.Admin)
	}
	dst = appendTimeField(dst, `,"created_at":`, u.CreatedAt)
	dst = appendTimeField(dst, `,"updated_at":`, u.UpdatedAt)
	return append(dst, '}')
}

// AppendPresenceEvent appends the frame of a presence event, byte for
// byte as EncodeEvent(EventPresence, "", 0, e) writes it, without
// reflection: every session's first login and last logout make one.
func AppendPresenceEvent(dst []byte, e *PresenceEvent) []byte {
	dst = append(dst, `{"event":"`+EventPresence+`","data":{"user":`...)
	dst = AppendString(dst, e.User)
	dst = append(dst, `,"status":`...)
	dst = AppendString(dst, e.Status)
	dst = appendTimeField(dst, `,"last_seen":`, e.LastSeen)
	return append(dst, "}}"...)
}
