package security

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// KeyType is the algorithm of a key switchboard certs makes.
type KeyType string

// Key types. ECDSA P-256 is the default: every TLS stack, browsers
// included, takes it. Ed25519 is smaller and faster but browsers do not
// accept it from a server, so keep it to node-to-node certificates.
const (
	KeyECDSA   KeyType = "ecdsa"
	KeyEd25519 KeyType = "ed25519"
)

// Lifetimes switchboard certs gives by default: a CA outlives many
// rotations of the certificates it signs.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	LeafLifetime = 2 * 365 * 24 * time.Hour
)

// clockSkew backdates certificates, so a peer whose clock is a little
// behind accepts one made a moment ago.
const clockSkew = time.Hour

// Kind is what a signed certificate is for.
type Kind int

const (
	// KindNode certificates authenticate a node to its peers and clients:
	// server and client authentication, the hosts as names.
	KindNode Kind = iota
	// KindClient certificates authenticate a client to a listener that
	// asks for one (--tls-client-ca): client authentication only, so they
	// never open the cluster's ports.
	KindClient
)

// PEMPair is a certificate and its private key, PEM-encoded.
type PEMPair struct{ Cert, Key []byte }

// NewCA makes a self-signed CA.
func NewCA(kt KeyType, lifetime time.Duration, now time.Time) (PEMPair, error) {
	key, err := newKey(kt)
	if err != nil {
		return PEMPair{}, err
	}
	// Each CA's name is its own (its key's id in it), so a TLS server that
	// accepts several CAs names them apart to its clients, and a client
	// picks the certificate of the one asked for (a CA being replaced
	// shares a bundle with its successor).
	skid := keyID(key.Public())
	tmpl, err := template(fmt.Sprintf("Switchboard CA %x", skid[:4]), now, lifetime)
	if err != nil {
		return PEMPair{}, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.SubjectKeyId = skid
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return PEMPair{}, err
	}
	return encodePair(der, key)
}

// Issue signs a node or client certificate with a CA. caCerts may be a
// bundle: the certificate signing is the one that matches caKey. A node
// certificate names hosts (IP addresses or DNS names, at least one); a
// client certificate names name.
func Issue(caCerts, caKey []byte, kind Kind, name string, hosts []string, kt KeyType, lifetime time.Duration, now time.Time) (PEMPair, error) {
	if kind == KindNode && len(hosts) == 0 {
		return PEMPair{}, errors.New("a node certificate needs at least one host (--host): the names and IP addresses other nodes and clients reach it at")
	}
	ca, signer, err := loadCA(caCerts, caKey)
	if err != nil {
		return PEMPair{}, err
	}
	if now.Add(lifetime).After(ca.NotAfter) {
		return PEMPair{}, fmt.Errorf("the certificate would outlive its CA (which ends %s): ask for a shorter --lifetime or make a new CA", ca.NotAfter.UTC().Format(time.RFC3339))
	}

	key, err := newKey(kt)
	if err != nil {
		return PEMPair{}, err
	}
	tmpl, err := template(name, now, lifetime)
	if err != nil {
		return PEMPair{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if kt == KeyECDSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	tmpl.AuthorityKeyId = ca.SubjectKeyId
	switch kind {
	case KindNode:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	case KindClient:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return PEMPair{}, fmt.Errorf("unknown certificate kind %d", kind)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), signer)
	if err != nil {
		return PEMPair{}, err
	}
	return encodePair(der, key)
}

func newKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case KeyECDSA, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	default:
		return nil, fmt.Errorf("unknown key type %q (ecdsa or ed25519)", kt)
	}
}

func template(cn string, now time.Time, lifetime time.Duration) (*x509.Certificate, error) {
	if lifetime <= 0 {
		return nil, fmt.Errorf("lifetime %s: must be positive", lifetime)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Switchboard"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(lifetime),
	}, nil
}

// keyID is a subject key identifier: a hash of the public key.
func keyID(pub crypto.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}

func encodePair(der []byte, key crypto.Signer) (PEMPair, error) {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return PEMPair{}, err
	}
	return PEMPair{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// loadCA finds, in a PEM bundle, the CA certificate whose public key is
// caKey's.
func loadCA(certs, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, nil, errors.New("the CA key file holds no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if k, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
			return nil, nil, fmt.Errorf("the CA key: %w", err)
		}
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("the CA key cannot sign")
	}
	pub, _ := x509.MarshalPKIXPublicKey(signer.Public())
	for _, c := range parseCAs(certs) {
		if cpub, _ := x509.MarshalPKIXPublicKey(c.PublicKey); bytes.Equal(cpub, pub) {
			return c, signer, nil
		}
	}
	return nil, nil, errors.New("no CA certificate in the CA file matches the CA key")
}
