package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/gateway/auth"
)

// Default token lifetimes (--ttl's usage names them): join tokens are
// short-lived grants, used once soon after they are minted.
const (
	sessionTokenTTL = time.Hour
	joinTokenTTL    = 5 * time.Minute
)

// token mints a session token, or with --channel a join token.
func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, "switchboard token --secret S --user U [--name N --admin | --channel C --perms read,write --single-use] [--ttl D]")
	secret := fs.String("secret", "", "HS256 secret (the server's --auth-secret)")
	userID := fs.String("user", "", "user id (the token's sub)")
	ch := fs.String("channel", "", "mint a join token for this channel instead of a session token")
	perms := fs.String("perms", "read,write", "join token permissions, comma-separated: "+strings.Join(auth.Perms, ", "))
	name := fs.String("name", "", "session token: the user's display name")
	admin := fs.Bool("admin", false, "session token: a global admin")
	singleUse := fs.Bool("single-use", false, "join token: good for one join (a random jti claim)")
	ttl := fs.Duration("ttl", 0, "lifetime; 0: 1h for a session token, 5m for a join token")
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
	if *ttl < 0 {
		return fmt.Errorf("--ttl %s: a lifetime cannot be negative", *ttl)
	}
	// A flag for the other kind of token would be ignored: refuse it.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, f := range []string{"name", "admin"} {
		if given[f] && *ch != "" {
			return fmt.Errorf("--%s applies to session tokens only, not to a join token (--channel)", f)
		}
	}
	for _, f := range []string{"perms", "single-use"} {
		if given[f] && *ch == "" {
			return fmt.Errorf("--%s applies to join tokens (--channel) only, not to a session token", f)
		}
	}
	s := auth.NewSigner(*secret)
	var tok string
	var err error
	if *ch != "" {
		p := splitList(*perms)
		if err := auth.CheckPerms(p); err != nil {
			return fmt.Errorf("--perms: %w", err)
		}
		j := auth.Join{User: *userID, Channel: *ch, Perms: p}
		if *singleUse {
			j.ID = auth.NewJoinID()
		}
		tok, err = s.JoinToken(j, cmp.Or(*ttl, joinTokenTTL))
	} else {
		tok, err = s.SessionToken(auth.Session{User: *userID, Name: *name, Admin: *admin}, cmp.Or(*ttl, sessionTokenTTL))
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
