package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/cluster/security"
)

const certsUsage = `usage: switchboard certs COMMAND [flags]

  create-ca            make a CA (ca.crt, ca.key) in --certs-dir
  create-node --host   make a node certificate (node.crt, node.key) signed by the CA
  create-client        make a client certificate (client.crt, client.key) signed by the CA
  create-cluster-key   print a new random gossip key for --cluster-key
  revoke --cert FILE   add certificates to the CA's revocation list (ca.crl), for
                       --cluster-tls-crl and --tls-client-crl; without --cert, re-sign it

switchboard certs COMMAND -h shows a command's flags.`

// certsCmd runs `switchboard certs`.
func certsCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, certsUsage)
		return errUsage
	}
	switch args[0] {
	case "create-ca", "create-node", "create-client":
		return createCert(args[0], args[1:], stdout, stderr)
	case "revoke":
		return revokeCmd(args[1:], stdout, stderr)
	case "create-cluster-key":
		fs := flag.NewFlagSet("certs create-cluster-key", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = usage(fs, "switchboard certs create-cluster-key (prints a base64 32-byte key)")
		if err := parse(fs, args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return errUsage
		}
		fmt.Fprintln(stdout, security.NewKey())
		return nil
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, certsUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "switchboard certs: unknown command %q\n%s\n", args[0], certsUsage)
		return errUsage
	}
}

// createCert runs create-ca, create-node and create-client.
func createCert(cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certs "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	synopsis := map[string]string{
		"create-ca":     "switchboard certs create-ca [--certs-dir DIR] [flags]",
		"create-node":   "switchboard certs create-node --host HOST[,HOST...] [--certs-dir DIR] [flags]",
		"create-client": "switchboard certs create-client [--name NAME] [--certs-dir DIR] [flags]",
	}[cmd]
	fs.Usage = usage(fs, synopsis)
	dir := fs.String("certs-dir", "certs", "directory the files are written to (and the CA's certificate, ca.crt, is read from)")
	keyType := fs.String("key-type", string(security.KeyECDSA), "ecdsa (P-256, every TLS stack takes it) or ed25519 (not accepted by browsers from a server)")
	lifetime := lifetimeFlag(security.LeafLifetime)
	overwrite := fs.Bool("overwrite", false, "replace files that exist (a node re-reads its certificate files without a restart)")
	var hosts, name, caKey *string
	if cmd == "create-ca" {
		lifetime = lifetimeFlag(security.CALifetime)
	} else {
		caKey = fs.String("ca-key", "", "the CA's private key (default: ca.key in --certs-dir; keep it off the nodes)")
	}
	fs.Var(&lifetime, "lifetime", "how long the certificate is valid: a Go duration or days, like 730d")
	switch cmd {
	case "create-node":
		hosts = fs.String("host", "", "comma-separated DNS names and IP addresses the node is reached at, by other nodes (its --cluster-bind and --remote-bind hosts) and by clients")
	case "create-client":
		name = fs.String("name", "", "client name, the certificate's common name; files are client.NAME.crt and client.NAME.key (default: client.crt, client.key)")
	}
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchboard certs %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return errUsage
	}
	base, pair, err := makeCert(cmd, *dir, caKey, hosts, name, security.KeyType(*keyType), time.Duration(lifetime))
	if err != nil {
		return err
	}
	return writePair(*dir, base, pair, *overwrite, stdout)
}

// makeCert makes what cmd asks for and names its files.
func makeCert(cmd, dir string, caKey, hosts, name *string, kt security.KeyType, lifetime time.Duration) (string, security.PEMPair, error) {
	now := time.Now()
	if cmd == "create-ca" {
		pair, err := security.NewCA(kt, lifetime, now)
		return "ca", pair, err
	}
	caCert, caKeyPEM, err := readCA(dir, *caKey)
	if err != nil {
		return "", security.PEMPair{}, err
	}
	if cmd == "create-node" {
		pair, err := security.Issue(caCert, caKeyPEM, security.KindNode, "switchboard node", splitList(*hosts), kt, lifetime, now)
		return "node", pair, err
	}
	base, cn := "client", "switchboard client"
	if *name != "" {
		base, cn = "client."+*name, *name
	}
	pair, err := security.Issue(caCert, caKeyPEM, security.KindClient, cn, nil, kt, lifetime, now)
	return base, pair, err
}

// readCA reads the CA certificate (bundle) and key a certificate is
// signed with.
func readCA(dir, keyFile string) (cert, key []byte, err error) {
	if keyFile == "" {
		keyFile = filepath.Join(dir, "ca.key")
	}
	if cert, err = os.ReadFile(filepath.Join(dir, "ca.crt")); err != nil {
		return nil, nil, fmt.Errorf("the CA certificate (switchboard certs create-ca makes one): %w", err)
	}
	if key, err = os.ReadFile(keyFile); err != nil {
		return nil, nil, fmt.Errorf("the CA key (--ca-key): %w", err)
	}
	return cert, key, nil
}

// writePair writes base.crt and base.key into dir, the key readable by its
// owner only. Each file is replaced in one step (written aside, then
// renamed), so a node re-reading them never reads half a file.
func writePair(dir, base string, p security.PEMPair, overwrite bool, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	if !overwrite {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s exists (--overwrite replaces it)", p)
			}
		}
	}
	// The key first: a node that reloads in between sees the old
	// certificate with the new key, which does not load, and keeps the
	// previous pair until the certificate follows.
	if err := writeAtomic(keyPath, p.Key, 0o600); err != nil {
		return err
	}
	if err := writeAtomic(certPath, p.Cert, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", certPath, keyPath)
	return nil
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lifetimeFlag is a duration that also takes days ("730d").
type lifetimeFlag time.Duration

func (l *lifetimeFlag) String() string {
	d := time.Duration(*l)
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}

func (l *lifetimeFlag) Set(s string) error {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return fmt.Errorf("lifetime %q: want a positive number of days or a Go duration", s)
		}
		*l = lifetimeFlag(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("lifetime %q: want a positive number of days or a Go duration", s)
	}
	*l = lifetimeFlag(d)
	return nil
}

// revokeCmd runs `switchboard certs revoke`: the CA's revocation list,
// with the certificates named added, signed again and written in one
// step (nodes re-read it without a restart).
func revokeCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certs revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, "switchboard certs revoke [--cert FILE[,FILE...]] [--serial HEX[,HEX...]] [--certs-dir DIR] [flags]")
	dir := fs.String("certs-dir", "certs", "directory of the CA (ca.crt, and ca.key unless --ca-key) and of the list")
	caKey := fs.String("ca-key", "", "the CA's private key (default: ca.key in --certs-dir)")
	crlPath := fs.String("crl", "", "the revocation list to extend (default: ca.crl in --certs-dir; made when missing)")
	certs := fs.String("cert", "", "comma-separated PEM certificates to revoke")
	serials := fs.String("serial", "", "comma-separated serial numbers (hexadecimal, as the node logs them) to revoke")
	lifetime := lifetimeFlag(30 * 24 * time.Hour)
	fs.Var(&lifetime, "lifetime", "until when the list is current (nodes warn past it, and still apply it): a Go duration or days")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchboard certs revoke: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	var revoke []*big.Int
	for _, f := range splitList(*certs) {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "CERTIFICATE" {
			return fmt.Errorf("%s: no PEM certificate", f)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		revoke = append(revoke, c.SerialNumber)
	}
	for _, s := range splitList(*serials) {
		n, ok := new(big.Int).SetString(strings.TrimPrefix(strings.ReplaceAll(s, ":", ""), "0x"), 16)
		if !ok || n.Sign() <= 0 {
			return fmt.Errorf("--serial %q: want a positive hexadecimal number", s)
		}
		revoke = append(revoke, n)
	}
	if *crlPath == "" {
		*crlPath = filepath.Join(*dir, "ca.crl")
	}
	prev, err := os.ReadFile(*crlPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	caCert, caKeyPEM, err := readCA(*dir, *caKey)
	if err != nil {
		return err
	}
	crl, err := security.Revoke(caCert, caKeyPEM, prev, revoke, time.Duration(lifetime), time.Now())
	if err != nil {
		return err
	}
	if err := writeAtomic(*crlPath, crl, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d certificates added)\n", *crlPath, len(revoke))
	return nil
}
