package protocol

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
)

// Route says who answers an op.
type Route string

const (
	// RouteSession: the session itself (connect, logout, presence
	// watches). Such ops need a live session.
	RouteSession Route = "session"
	// RouteUser: the caller's own user actor.
	RouteUser Route = "user"
	// RouteChannel: the actor of the channel named by args.channel.
	RouteChannel Route = "channel"
	// RouteGateway: the gateway, which gathers the answer from several
	// actors (users.get, channels.list, channels.query).
	RouteGateway Route = "gateway"
)

// HTTPForm is a resource URL of an op, besides POST /v1/rpc/{op}. Its
// args are the JSON body (an object, optional), the query string and the
// path variables, merged; no arg may come from two of them.
type HTTPForm struct {
	Method string
	// Path is a net/http pattern path: /v1/channels/{id}/messages.
	Path string
	// Params maps a path variable to the arg it fills when the names
	// differ ({id} fills channel); a variable not listed fills the arg of
	// its own name. An arg that is a list gets the one value.
	Params map[string]string
	// Status answers success.
	Status int
}

// Op is one op of the protocol: everything the server, the clients, the
// metrics, the HTTP API and its OpenAPI document know of it.
type Op struct {
	Name    string
	Summary string
	// Args and Result are the Go types of the args and result objects;
	// their json tags are the wire names.
	Args, Result reflect.Type
	Route        Route
	// Session: the op needs a live session (a WebSocket): over HTTP it
	// answers bad_request.
	Session bool
	// Idempotent: repeating the op with the same args changes nothing
	// more than the first time, so a client may resend it after a
	// reconnect and retry it on unavailable.
	Idempotent bool
	// AsUser: the op acts as a user (its author, its member...). A
	// backend calling it with an API key alone must name the user with
	// X-Switchboard-User.
	AsUser bool
	// HTTP are the op's resource URLs.
	HTTP []HTTPForm

	shape *shape // Args' field names, for strict decoding (args.go)
}

// HTTPOptional names args the HTTP API fills when they are absent: a
// message.send's client_id comes from Idempotency-Key or is made up.
func (o *Op) HTTPOptional(arg string) bool {
	return o.Name == OpMessageSend && arg == "client_id"
}

// Empty is the result of ops that answer {}.
type Empty struct{}

// UserResult is {user}.
type UserResult struct {
	User User `json:"user"`
}

// UsersGetArgs are the args of users.get.
type UsersGetArgs struct {
	IDs []string `json:"ids"`
}

// UserUpdateArgs are the args of user.update (and the body of PUT
// /v1/users/{id}): only fields present change.
type UserUpdateArgs struct {
	Name        *string         `json:"name,omitempty"`
	Description *string         `json:"description,omitempty"`
	Image       *string         `json:"image,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
}

func typ[T any]() reflect.Type { return reflect.TypeFor[T]() }

func form(method, path string, status int, params ...string) HTTPForm {
	f := HTTPForm{Method: method, Path: path, Status: status}
	for i := 0; i+1 < len(params); i += 2 {
		if f.Params == nil {
			f.Params = map[string]string{}
		}
		f.Params[params[i]] = params[i+1]
	}
	return f
}

// opTable is the one list of ops. Everything that needs to know the ops
// derives from it: the gateway's dispatch, the HTTP routes, the OpenAPI
// document, the Go client's idempotent set and the metrics' op labels.
var opTable = buildOps([]Op{
	{Name: OpConnect, Summary: "Authenticate the session (first frame)", Args: typ[ConnectArgs](), Result: typ[ConnectResult](), Route: RouteSession, Session: true},
	{Name: OpLogout, Summary: "End the session", Args: typ[Empty](), Result: typ[Empty](), Route: RouteSession, Session: true},
	{Name: OpPing, Summary: "Liveness check, answered by the gateway itself", Args: typ[Empty](), Result: typ[Empty](), Route: RouteSession, Session: true, Idempotent: true},
	{Name: OpMe, Summary: "The caller's user", Args: typ[Empty](), Result: typ[UserResult](), Route: RouteUser, Idempotent: true, AsUser: true},
	{Name: OpUserUpdate, Summary: "Update the caller's profile", Args: typ[UserUpdateArgs](), Result: typ[UserResult](), Route: RouteUser, Idempotent: true, AsUser: true},
	{Name: OpUsersGet, Summary: "Users by id (unknown ones left out)", Args: typ[UsersGetArgs](), Result: typ[UsersResult](), Route: RouteGateway, Idempotent: true,
		HTTP: []HTTPForm{form(http.MethodGet, "/v1/users/{id}", http.StatusOK, "id", "ids")}},
	{Name: OpPresenceWatch, Summary: "Watch users' presence", Args: typ[PresenceArgs](), Result: typ[UsersResult](), Route: RouteSession, Session: true, Idempotent: true},
	{Name: OpPresenceUnwatch, Summary: "Stop watching users' presence", Args: typ[PresenceArgs](), Result: typ[Empty](), Route: RouteSession, Session: true, Idempotent: true},

	{Name: OpChannelCreate, Summary: "Create a channel (or open a distinct conversation)", Args: typ[ChannelCreateArgs](), Result: typ[ChannelCreateResult](), Route: RouteChannel, AsUser: true,
		HTTP: []HTTPForm{form(http.MethodPost, "/v1/channels", http.StatusCreated)}},
	{Name: OpChannelUpdate, Summary: "Update a channel's settings", Args: typ[ChannelUpdateArgs](), Result: typ[ChannelResult](), Route: RouteChannel, Idempotent: true,
		HTTP: []HTTPForm{form(http.MethodPatch, "/v1/channels/{id}", http.StatusOK, "id", "channel")}},
	{Name: OpChannelDelete, Summary: "Delete a channel (soft)", Args: typ[ChannelRef](), Result: typ[ChannelResult](), Route: RouteChannel,
		HTTP: []HTTPForm{form(http.MethodDelete, "/v1/channels/{id}", http.StatusOK, "id", "channel")}},
	{Name: OpChannelGet, Summary: "A channel and the caller's member record", Args: typ[ChannelRef](), Result: typ[ChannelResult](), Route: RouteChannel, Idempotent: true,
		HTTP: []HTTPForm{form(http.MethodGet, "/v1/channels/{id}", http.StatusOK, "id", "channel")}},
	{Name: OpChannelsList, Summary: "The caller's channels, newest activity first", Args: typ[ChannelsListArgs](), Result: typ[ChannelsListResult](), Route: RouteGateway, Idempotent: true, AsUser: true,
		HTTP: []HTTPForm{form(http.MethodGet, "/v1/channels", http.StatusOK)}},
	{Name: OpChannelsQuery, Summary: "Public channels by tag and type", Args: typ[ChannelsQueryArgs](), Result: typ[ChannelsQueryResult](), Route: RouteGateway, Idempotent: true},
	{Name: OpChannelJoin, Summary: "Join a channel (over HTTP: without watching it)", Args: typ[JoinArgs](), Result: typ[WatchResult](), Route: RouteChannel, Idempotent: true, AsUser: true},
	{Name: OpChannelLeave, Summary: "Leave a channel", Args: typ[ChannelRef](), Result: typ[Empty](), Route: RouteChannel, AsUser: true},
	{Name: OpChannelWatch, Summary: "Watch a channel's events", Args: typ[WatchArgs](), Result: typ[WatchResult](), Route: RouteChannel, Session: true, Idempotent: true},
	{Name: OpChannelUnwatch, Summary: "Stop watching a channel", Args: typ[ChannelRef](), Result: typ[Empty](), Route: RouteChannel, Session: true, Idempotent: true},
	{Name: OpMembersList, Summary: "A channel's members, by user id", Args: typ[MembersListArgs](), Result: typ[MembersListResult](), Route: RouteChannel, Idempotent: true,
		HTTP: []HTTPForm{form(http.MethodGet, "/v1/channels/{id}/members", http.StatusOK, "id", "channel")}},
	{Name: OpMembersAdd, Summary: "Add members", Args: typ[MembersArgs](), Result: typ[MembersResult](), Route: RouteChannel,
		HTTP: []HTTPForm{form(http.MethodPost, "/v1/channels/{id}/members", http.StatusOK, "id", "channel")}},
	{Name: OpMembersRemove, Summary: "Remove members", Args: typ[MembersArgs](), Result: typ[MembersResult](), Route: RouteChannel,
		HTTP: []HTTPForm{form(http.MethodDelete, "/v1/channels/{id}/members/{user}", http.StatusOK, "id", "channel", "user", "users")}},
	{Name: OpMembersInvite, Summary: "Invite users", Args: typ[MembersArgs](), Result: typ[MembersResult](), Route: RouteChannel},

	{Name: OpMessageSend, Summary: "Send a message (client_id makes it idempotent)", Args: typ[SendArgs](), Result: typ[MessageResult](), Route: RouteChannel, Idempotent: true, AsUser: true,
		HTTP: []HTTPForm{form(http.MethodPost, "/v1/channels/{id}/messages", http.StatusCreated, "id", "channel")}},
	{Name: OpMessageEdit, Summary: "Edit one's message", Args: typ[EditArgs](), Result: typ[MessageResult](), Route: RouteChannel, Idempotent: true, AsUser: true,
		HTTP: []HTTPForm{form(http.MethodPatch, "/v1/channels/{id}/messages/{message_id}", http.StatusOK, "id", "channel")}},
	{Name: OpMessageDelete, Summary: "Delete a message (soft)", Args: typ[MessageRef](), Result: typ[MessageResult](), Route: RouteChannel,
		HTTP: []HTTPForm{form(http.MethodDelete, "/v1/channels/{id}/messages/{message_id}", http.StatusOK, "id", "channel")}},
	{Name: OpMessagesHistory, Summary: "A page of messages", Args: typ[HistoryArgs](), Result: typ[HistoryResult](), Route: RouteChannel, Idempotent: true,
		HTTP: []HTTPForm{form(http.MethodGet, "/v1/channels/{id}/messages", http.StatusOK, "id", "channel")}},
	{Name: OpReactionAdd, Summary: "React to a message", Args: typ[ReactionArgs](), Result: typ[MessageResult](), Route: RouteChannel, Idempotent: true, AsUser: true,
		HTTP: []HTTPForm{form(http.MethodPut, "/v1/channels/{id}/messages/{message_id}/reactions/{name}", http.StatusOK, "id", "channel")}},
	{Name: OpReactionRemove, Summary: "Remove one's reaction", Args: typ[ReactionArgs](), Result: typ[MessageResult](), Route: RouteChannel, Idempotent: true, AsUser: true,
		HTTP: []HTTPForm{form(http.MethodDelete, "/v1/channels/{id}/messages/{message_id}/reactions/{name}", http.StatusOK, "id", "channel")}},
	{Name: OpMessageFlag, Summary: "Flag a message for moderators", Args: typ[FlagArgs](), Result: typ[Empty](), Route: RouteChannel, AsUser: true},
	{Name: OpMessageFavorite, Summary: "Mark or unmark a favorite", Args: typ[FavoriteArgs](), Result: typ[Empty](), Route: RouteChannel, Idempotent: true, AsUser: true},
	{Name: OpTypingStart, Summary: "Start typing", Args: typ[ChannelRef](), Result: typ[Empty](), Route: RouteChannel, Session: true, Idempotent: true},
	{Name: OpTypingStop, Summary: "Stop typing", Args: typ[ChannelRef](), Result: typ[Empty](), Route: RouteChannel, Session: true, Idempotent: true},
	{Name: OpReadMark, Summary: "Mark messages read", Args: typ[ReadMarkArgs](), Result: typ[MemberResult](), Route: RouteChannel, Idempotent: true, AsUser: true},

	{Name: OpMemberMute, Summary: "Mute a member", Args: typ[ModerateArgs](), Result: typ[MemberResult](), Route: RouteChannel},
	{Name: OpMemberUnmute, Summary: "Unmute a member", Args: typ[MemberRef](), Result: typ[MemberResult](), Route: RouteChannel},
	{Name: OpMemberBan, Summary: "Ban a user", Args: typ[ModerateArgs](), Result: typ[MemberResult](), Route: RouteChannel},
	{Name: OpMemberUnban, Summary: "Lift a ban", Args: typ[MemberRef](), Result: typ[MemberResult](), Route: RouteChannel},
	{Name: OpMemberKick, Summary: "Remove a member now (may join again)", Args: typ[KickArgs](), Result: typ[Empty](), Route: RouteChannel},
	{Name: OpMemberRoles, Summary: "Set a member's roles", Args: typ[RolesArgs](), Result: typ[MemberResult](), Route: RouteChannel},
	{Name: OpChannelMute, Summary: "Mute a channel (only moderators send)", Args: typ[ChannelMuteArgs](), Result: typ[ChannelResult](), Route: RouteChannel},
	{Name: OpChannelUnmute, Summary: "Unmute a channel", Args: typ[ChannelRef](), Result: typ[ChannelResult](), Route: RouteChannel},
})

// opIndex finds an op of opTable by name.
var opIndex = func() map[string]int {
	m := make(map[string]int, len(opTable))
	for i, o := range opTable {
		m[o.Name] = i
	}
	return m
}()

func buildOps(ops []Op) []Op {
	for i := range ops {
		ops[i].shape = shapeOf(ops[i].Args)
	}
	return ops
}

// Ops returns every op, in the contract's order.
func Ops() []Op { return slices.Clone(opTable) }

// LookupOp returns the op named name.
func LookupOp(name string) (Op, bool) {
	i, ok := opIndex[name]
	if !ok {
		return Op{}, false
	}
	return opTable[i], true
}

// PathVars returns the {variables} of a pattern path, in order.
func PathVars(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.TrimSuffix(seg[1:], "}"))
		}
	}
	return out
}
