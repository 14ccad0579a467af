package web

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// The app is built on the TypeScript SDK, whose wire types live in one
// file: these tests hold that file to the server's op table (the one the
// gateway, the HTTP API and its OpenAPI document are made from), so an op
// or argument added to the server and not to the SDK — or the reverse —
// fails here.

const sdkTypes = "../sdk/typescript/src/types.ts"

func readSDKTypes(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(sdkTypes)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// quoted returns the "..." strings of the TypeScript block that starts
// with start and ends at the first end after it.
func quoted(t *testing.T, src, start, end string) []string {
	t.Helper()
	i := strings.Index(src, start)
	if i < 0 {
		t.Fatalf("%s has no %q", sdkTypes, start)
	}
	block := src[i+len(start):]
	block = block[:strings.Index(block, end)]
	var out []string
	for _, m := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(block, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

func TestSDKKnowsEveryOp(t *testing.T) {
	t.Parallel()
	src := readSDKTypes(t)
	var names, idempotent []string
	for _, op := range protocol.Ops() {
		names = append(names, op.Name)
		if op.Idempotent {
			idempotent = append(idempotent, op.Name)
		}
	}
	slices.Sort(names)
	slices.Sort(idempotent)
	if got := quoted(t, src, "export const OP_NAMES = [", "] as const"); !slices.Equal(got, names) {
		t.Errorf("OP_NAMES in %s:\n  %v\nthe server's ops:\n  %v", sdkTypes, got, names)
	}
	if got := quoted(t, src, "export const IDEMPOTENT_OPS: ReadonlySet<OpName> = new Set<OpName>([", "]);"); !slices.Equal(got, idempotent) {
		t.Errorf("IDEMPOTENT_OPS in %s:\n  %v\nthe server's idempotent ops:\n  %v", sdkTypes, got, idempotent)
	}
}

// sharedArgs are arguments the server's decoder accepts for an op only
// because the op shares its Go args type with another op, and that
// docs/protocol.md does not list for it: the SDK leaves them out.
var sharedArgs = map[string][]string{
	protocol.OpChannelWatch: {"token"},                  // WatchArgs, shared with channel.join
	protocol.OpMemberUnmute: {"duration_min", "reason"}, // the mute's args
	protocol.OpMemberUnban:  {"duration_min", "reason"}, // the ban's args
	protocol.OpMemberKick:   {"duration_min"},
}

// TestSDKArgsMatchTheServer: each op's args type in the SDK's Ops table
// has the arguments the server takes for it — none it would refuse, and
// all it documents.
func TestSDKArgsMatchTheServer(t *testing.T) {
	t.Parallel()
	src := readSDKTypes(t)
	opRE := regexp.MustCompile(`(?m)^  "?([a-z.]+)"?: \{ args: (\w+); result:`)
	argsOf := map[string]string{}
	for _, m := range opRE.FindAllStringSubmatch(src, -1) {
		argsOf[m[1]] = m[2]
	}
	for _, op := range protocol.Ops() {
		typ, ok := argsOf[op.Name]
		if !ok {
			t.Errorf("%s: not in the SDK's Ops table", op.Name)
			continue
		}
		got := interfaceFields(t, src, typ)
		var want []string
		for _, a := range op.ArgNames() {
			if !slices.Contains(sharedArgs[op.Name], a) {
				want = append(want, a)
			}
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the SDK's %s has %v, the server takes %v", op.Name, typ, got, want)
		}
	}
}

// interfaceFields lists the fields of a TypeScript interface of the SDK
// (with those of the interface it extends); Empty has none.
func interfaceFields(t *testing.T, src, name string) []string {
	t.Helper()
	if name == "Empty" {
		return []string{}
	}
	m := regexp.MustCompile(`(?s)export interface ` + name + `(?: extends (\w+))? \{\n(.*?)\n\}`).FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("%s has no interface %s", sdkTypes, name)
	}
	var out []string
	if m[1] != "" {
		out = interfaceFields(t, src, m[1])
	}
	for _, f := range regexp.MustCompile(`(?m)^  (\w+)\??:`).FindAllStringSubmatch(m[2], -1) {
		out = append(out, f[1])
	}
	slices.Sort(out)
	return out
}

// TestSDKKnowsEveryEvent: every event name the server defines is in the
// SDK's EVENT_NAMES.
func TestSDKKnowsEveryEvent(t *testing.T) {
	t.Parallel()
	src := readSDKTypes(t)
	events := quoted(t, src, "export const EVENT_NAMES = [", "] as const")
	files, _ := os.ReadDir("../protocol")
	var server []string
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".go") || strings.HasSuffix(f.Name(), "_test.go") {
			continue
		}
		b, err := os.ReadFile("../protocol/" + f.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^\s+Event\w+\s*=\s*"([^"]+)"`).FindAllStringSubmatch(string(b), -1) {
			server = append(server, m[1])
		}
	}
	slices.Sort(server)
	if len(server) < 10 || !slices.Equal(events, server) {
		t.Errorf("EVENT_NAMES in %s:\n  %v\nthe server's events:\n  %v", sdkTypes, events, server)
	}
}
