package protocol

import (
	"errors"
	"fmt"
	"slices"
)

// Code is a wire error code. The set is closed: anything that is not one of
// these reaches a client as CodeInternal.
type Code string

// Error codes from the protocol contract.
const (
	CodeBadRequest      Code = "bad_request"
	CodeUnauthenticated Code = "unauthenticated"
	CodeTokenInvalid    Code = "token_invalid"
	CodeTokenExpired    Code = "token_expired"
	CodeForbidden       Code = "forbidden"
	CodeNotFound        Code = "not_found"
	CodeNotMember       Code = "not_member"
	CodeAlreadyMember   Code = "already_member"
	CodeBanned          Code = "banned"
	CodeMuted           Code = "muted"
	CodeChannelMuted    Code = "channel_muted"
	CodeRateLimited     Code = "rate_limited"
	CodeTooLong         Code = "too_long"
	CodeTooLarge        Code = "too_large"
	CodeInvalidState    Code = "invalid_state"
	CodeUnavailable     Code = "unavailable"
	CodeInternal        Code = "internal"
)

var codes = []Code{
	CodeBadRequest, CodeUnauthenticated, CodeTokenInvalid, CodeTokenExpired,
	CodeForbidden, CodeNotFound, CodeNotMember, CodeAlreadyMember, CodeBanned,
	CodeMuted, CodeChannelMuted, CodeRateLimited, CodeTooLong, CodeTooLarge,
	CodeInvalidState, CodeUnavailable, CodeInternal,
}

var knownCodes = func() map[Code]bool {
	m := make(map[Code]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}()

// Codes returns every code of the contract.
func Codes() []Code { return slices.Clone(codes) }

// Known reports whether c is one of the contract's codes.
func (c Code) Known() bool { return knownCodes[c] }

// Retryable reports whether a client may retry the same request unchanged
// and expect it to succeed later.
func (c Code) Retryable() bool {
	return c == CodeUnavailable || c == CodeRateLimited
}

// Error is the error object of a reply frame.
type Error struct {
	Code         Code   `json:"code"`
	Message      string `json:"message"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds a wire error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError maps any error to a wire error. Errors that are not (and do not
// wrap) *Error become CodeInternal without leaking their text.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Code.Known() {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}
