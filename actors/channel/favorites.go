package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Favorites are private to their user: an aux record per (user, message)
// (fav\0<user>\0<segment>, and a copy by message that a deletion removes
// them by), shown as favorite in what that user reads. No
// event announces them. Setting a favorite to what it already is changes
// nothing and succeeds.
func (s *State) handleFavorite(c Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a protocol.FavoriteArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.On == nil {
		return nil, badRequest("on is required (true or false)")
	}
	old, perr := s.findMessage(a.MessageID)
	if perr != nil {
		return nil, perr
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if err := s.canRead(c, m); err != nil {
		return nil, err
	}
	key := favKey(c.User, old.Segment)
	_, has, err := s.auxGet(key)
	if err != nil {
		return nil, internal(err)
	}
	uc, err := s.userCounts(c.User)
	if err != nil {
		return nil, internal(err)
	}
	on := *a.On
	if has == on {
		return struct{}{}, nil
	}
	if on {
		if old.Deleted {
			return nil, protocol.Errorf(protocol.CodeInvalidState, "message %s is deleted", a.MessageID)
		}
		if uc.Favorites >= int64(s.cfg.Rich.MaxFavorites) {
			return nil, protocol.Errorf(protocol.CodeTooLarge, "%d favorites in %s, the limit is %d", uc.Favorites, s.id, s.cfg.Rich.MaxFavorites)
		}
		uc.Favorites++
		s.auxPut(key, nil)
		s.auxPut(msgFavKey(old.Segment, c.User), nil)
	} else {
		uc.Favorites = max(uc.Favorites-1, 0)
		s.auxDel(key)
		s.auxDel(msgFavKey(old.Segment, c.User))
	}
	s.putUserCounts(c.User, uc)
	return struct{}{}, nil
}
