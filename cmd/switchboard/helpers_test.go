package main

import (
	"strconv"

	"github.com/switchboard-chat/switchboard/protocol"
)

func strconvItoa(i int) string { return strconv.Itoa(i) }

func sendArgs(ch, text string) protocol.SendArgs {
	return protocol.SendArgs{Channel: ch, Text: text}
}
