package protocol

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
)

// The server HTTP API's own endpoints: what only HTTP offers, beside
// POST /v1/rpc/{op} and the ops' resource URLs (Op.HTTP).

// Headers of the HTTP API.
const (
	// HeaderUser names the user an API-key request acts as.
	HeaderUser = "X-Switchboard-User"
	// HeaderIdempotencyKey is a message.send's client_id over HTTP.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Endpoint is an HTTP-only endpoint.
type Endpoint struct {
	Method, Path string
	Summary      string
	// Body and Result are the Go types of the request and reply bodies
	// (Body nil: none).
	Body, Result reflect.Type
	Status       int
	// APIKeyOnly: only a server API key (without X-Switchboard-User) may
	// call it.
	APIKeyOnly bool
	// NoAuth: no credential needed.
	NoAuth bool
	// Query are the query parameters it takes.
	Query []QueryParam
	// NDJSONBody and NDJSONResult: the body or the result is NDJSON, one
	// record (RecordTypes) a line, instead of one JSON value.
	NDJSONBody, NDJSONResult bool

	shape *shape // Body's fields (args.go)
}

// QueryParam is a query parameter of an endpoint.
type QueryParam struct {
	Name, Type, Description string
}

// Paths of the HTTP-only endpoints.
const (
	PathSendToUser = "/v1/users/{id}/messages"
	PathUserPut    = "/v1/users/{id}"
	PathTokens     = "/v1/tokens"
	PathOpenAPI    = "/v1/openapi.json"
	PathRPC        = "/v1/rpc/{op}"
	PathExport     = "/v1/export"
	PathImport     = "/v1/import"
)

var endpointTable = buildEndpoints([]Endpoint{
	{Method: http.MethodPost, Path: PathSendToUser, Summary: "Send to a user: open (or re-open) the distinct conversation with them and send into it",
		Body: typ[SendToUserArgs](), Result: typ[SendToUserResult](), Status: http.StatusCreated},
	{Method: http.MethodPut, Path: PathUserPut, Summary: "Create a user or update the given fields of its profile",
		Body: typ[UserUpdateArgs](), Result: typ[UserResult](), Status: http.StatusOK, APIKeyOnly: true},
	{Method: http.MethodPost, Path: PathTokens, Summary: "Mint a session token, or with channel a join token",
		Body: typ[TokenArgs](), Result: typ[TokenResult](), Status: http.StatusCreated, APIKeyOnly: true},
	{Method: http.MethodGet, Path: PathOpenAPI, Summary: "This API's OpenAPI 3.1 document",
		Status: http.StatusOK, NoAuth: true},
	{Method: http.MethodGet, Path: PathExport, Summary: "Export as NDJSON: every user, then each channel followed by its members and its messages in segment order",
		Status: http.StatusOK, APIKeyOnly: true, NDJSONResult: true,
		Query: []QueryParam{{Name: "channel", Type: "string", Description: "export this channel only (its channel, member and message records)"}}},
	{Method: http.MethodPost, Path: PathImport, Summary: "Import NDJSON records (as an export writes them): each channel's all or none, idempotent",
		Result: typ[ImportResult](), Status: http.StatusOK, APIKeyOnly: true, NDJSONBody: true,
		Query: []QueryParam{{Name: "dry_run", Type: "boolean", Description: "check every line and write nothing"}}},
})

func buildEndpoints(es []Endpoint) []Endpoint {
	for i := range es {
		if es[i].Body != nil {
			es[i].shape = shapeOf(es[i].Body)
		}
	}
	return es
}

// Endpoints returns the HTTP-only endpoints.
func Endpoints() []Endpoint { return slices.Clone(endpointTable) }

// SendToUserArgs are the body of POST /v1/users/{id}/messages: the args
// of message.send without channel.
type SendToUserArgs struct {
	ClientID    string          `json:"client_id,omitempty"`
	Text        string          `json:"text,omitempty"`
	Type        string          `json:"type,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
	ParentID    string          `json:"parent_id,omitempty"`
	Mentions    []string        `json:"mentions,omitempty"`
	Attachments []string        `json:"attachments,omitempty"`
}

// In returns the message.send args of a send into channel.
func (a SendToUserArgs) In(channel string) SendArgs {
	return SendArgs{Channel: channel, ClientID: a.ClientID, Text: a.Text, Type: a.Type, Data: a.Data, Metadata: a.Metadata,
		Tags: a.Tags, ParentID: a.ParentID, Mentions: a.Mentions, Attachments: a.Attachments}
}

// SendToUserResult is the reply of POST /v1/users/{id}/messages.
type SendToUserResult struct {
	Message *Message `json:"message"`
	Channel *Channel `json:"channel"`
	// Created says whether this call made the conversation.
	Created bool `json:"created"`
	// Duplicate says the client_id was used before: the message is the
	// original, and nothing was sent.
	Duplicate bool `json:"duplicate,omitempty"`
}

// TokenArgs are the body of POST /v1/tokens: a session token, or with
// channel a join token.
type TokenArgs struct {
	User string `json:"user"`
	// TTLS is the lifetime in seconds (default: 3600 for a session token,
	// 300 for a join token).
	TTLS *int64 `json:"ttl_s,omitempty"`
	// Name and Admin are claims of a session token.
	Name  string `json:"name,omitempty"`
	Admin bool   `json:"admin,omitempty"`
	// Channel and Perms make a join token (perms default: read, write).
	Channel string   `json:"channel,omitempty"`
	Perms   []string `json:"perms,omitempty"`
	// SingleUse makes a join token good for one join (it gets a random
	// jti claim the channel remembers until the token expires).
	SingleUse bool `json:"single_use,omitempty"`
}

// TokenResult is the reply of POST /v1/tokens.
type TokenResult struct {
	Token     string `json:"token"`
	ExpiresAt Time   `json:"expires_at"`
}

// ErrorBody is every HTTP error reply.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// HTTPStatus maps a wire error code to the HTTP API's status.
func HTTPStatus(c Code) int {
	switch c {
	case CodeBadRequest, CodeTooLong:
		return http.StatusBadRequest
	case CodeUnauthenticated, CodeTokenInvalid, CodeTokenExpired:
		return http.StatusUnauthorized
	case CodeForbidden, CodeNotMember, CodeBanned, CodeMuted, CodeChannelMuted:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeAlreadyMember, CodeInvalidState:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
