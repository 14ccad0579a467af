package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/switchboard-chat/switchboard/gateway/auth"
)

// token mints a session token, or with --channel a join token.
func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, "switchboard token --secret S --user U [--channel C --perms read,write] [--ttl 1h]")
	secret := fs.String("secret", "", "HS256 secret (the server's --auth-secret)")
	userID := fs.String("user", "", "user id (the token's sub)")
	ch := fs.String("channel", "", "mint a join token for this channel instead of a session token")
	perms := fs.String("perms", "read,write", "join token permissions: read, write, moderate")
	name := fs.String("name", "", "session token: the user's display name")
	admin := fs.Bool("admin", false, "session token: a global admin")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if *secret == "" || *userID == "" {
		fs.Usage()
		return errUsage
	}
	s := auth.NewSigner(*secret)
	var tok string
	var err error
	if *ch != "" {
		tok, err = s.JoinToken(auth.Join{User: *userID, Channel: *ch, Perms: splitList(*perms)}, *ttl)
	} else {
		tok, err = s.SessionToken(auth.Session{User: *userID, Name: *name, Admin: *admin}, *ttl)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
