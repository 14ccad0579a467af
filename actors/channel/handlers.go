package channel

import "github.com/switchboard-chat/switchboard/protocol"

// handlerOf returns the handler of op, nil for an op the channel does not
// answer: the protocol's ops routed to a channel (protocol.RouteChannel)
// and the internal ones the gateway and the channel's own timers send.
func handlerOf(op string) handler {
	switch op {
	case OpFileCheck:
		return (*State).handleFileCheck
	case protocol.OpChannelCreate:
		return (*State).handleCreate
	case OpOpen:
		return (*State).handleOpen
	case protocol.OpChannelGet:
		return (*State).handleGet
	case protocol.OpChannelUpdate:
		return (*State).handleUpdate
	case protocol.OpChannelDelete:
		return (*State).handleChannelDelete
	case OpSummary:
		return (*State).handleSummary
	case protocol.OpMessageFavorite:
		return (*State).handleFavorite
	case protocol.OpMessageFlag:
		return (*State).handleFlag
	case OpListing:
		return (*State).handleListing
	case protocol.OpMembersList:
		return (*State).handleMembersList
	case protocol.OpMembersAdd:
		return (*State).handleMembersAdd
	case protocol.OpMembersRemove:
		return (*State).handleMembersRemove
	case protocol.OpMembersInvite:
		return (*State).handleMembersInvite
	case protocol.OpMemberRoles:
		return (*State).handleMemberRoles
	case protocol.OpMessageSend:
		return (*State).handleSend
	case protocol.OpMessageEdit:
		return (*State).handleEdit
	case protocol.OpMessageDelete:
		return (*State).handleMessageDelete
	case protocol.OpMessagesHistory:
		return (*State).handleHistory
	case protocol.OpMemberMute:
		return (*State).handleMemberMute
	case protocol.OpMemberUnmute:
		return (*State).handleMemberUnmute
	case protocol.OpMemberBan:
		return (*State).handleMemberBan
	case protocol.OpMemberUnban:
		return (*State).handleMemberUnban
	case protocol.OpMemberKick:
		return (*State).handleMemberKick
	case protocol.OpChannelMute:
		return (*State).handleChannelMute
	case protocol.OpChannelUnmute:
		return (*State).handleChannelUnmute
	case protocol.OpReactionAdd:
		return (*State).handleReactionAdd
	case protocol.OpReactionRemove:
		return (*State).handleReactionRemove
	case protocol.OpReadMark:
		return (*State).handleReadMark
	case OpRewatch:
		return (*State).handleRewatch
	case OpSendFiles:
		return (*State).handleSendFiles
	case protocol.OpTypingStart:
		return (*State).handleTypingStart
	case protocol.OpTypingStop:
		return (*State).handleTypingStop
	case OpTick:
		return (*State).handleTick
	case protocol.OpChannelJoin:
		return (*State).handleJoin
	case protocol.OpChannelWatch:
		return (*State).handleWatch
	case protocol.OpChannelUnwatch:
		return (*State).handleUnwatch
	case protocol.OpChannelLeave:
		return (*State).handleLeave
	case OpExport:
		return (*State).handleExport
	case OpImportStage:
		return (*State).handleImportStage
	case OpImportCommit:
		return (*State).handleImportCommit
	case OpImportAbort:
		return (*State).handleImportAbort
	case OpWebhookFetch:
		return (*State).handleWebhookFetch
	case OpWebhookAck:
		return (*State).handleWebhookAck
	case OpWebhookWake:
		return (*State).handleWebhookWake
	}
	return nil
}

// Handles reports whether the channel answers op.
func Handles(op string) bool { return handlerOf(op) != nil }
