// Command switchboard runs a Switchboard node, mints tokens, and load-tests
// a deployment.
//
//	switchboard serve    [flags]   run a node
//	switchboard token    [flags]   mint a session or join token
//	switchboard loadtest [flags]   load-test a deployment
//	switchboard chaos    [flags]   prove a build survives faults
//	switchboard certs    COMMAND   make a CA, node and client certificates, cluster keys
//	switchboard export   [flags]   export users and channels as NDJSON
//	switchboard import   [flags]   import NDJSON records
//	switchboard openapi            print the HTTP API's OpenAPI document
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-chat/switchboard/protocol/openapi"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageLine = "usage: switchboard serve|token|loadtest|chaos|certs|export|import|openapi [flags] (switchboard CMD -h for flags)"

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usageLine)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "token":
		err = token(args[1:], stdout, stderr)
	case "loadtest":
		err = loadtestCmd(ctx, args[1:], stdout, stderr)
	case "chaos":
		err = chaosCmd(ctx, args[1:], stdout, stderr)
	case "certs":
		err = certsCmd(args[1:], stdout, stderr)
	case "export":
		err = exportCmd(ctx, args[1:], stdout, stderr)
	case "import":
		err = importCmd(ctx, args[1:], stdout, stderr)
	case "openapi":
		// The document GET /v1/openapi.json serves, for code generators
		// and SDKs that build without a node.
		if len(args) > 1 {
			fmt.Fprintln(stderr, "usage: switchboard openapi (no flags)")
			return 2
		}
		_, err = fmt.Fprintln(stdout, string(openapi.Document()))
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usageLine)
		return 0
	default:
		fmt.Fprintf(stderr, "switchboard: unknown command %q (serve, token, loadtest, chaos, certs, export, import, openapi)\n", args[0])
		return 2
	}
	if err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintf(stderr, "switchboard %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
