// Command note is the Go side of ProofKV's signed-note interoperability test
// (test/interop/note.test.ts). It uses golang.org/x/mod/sumdb/note, an implementation ProofKV's
// authors did not write, to verify notes ProofKV signed and to sign notes ProofKV verifies.
// The note package has no cosignature API, so cosignature/v1 (C2SP tlog-cosignature) is
// written here from the specification, on top of the package's Signer and Verifier interfaces.
//
//	note verify VKEY... < note      prints one line per verified signer: name+hash
//	note sign SKEY... < text        prints the signed note
//	note cosign NAME SEEDHEX TIME < note   appends a cosignature/v1 line, prints the note
//	note cosigner-vkey NAME SEEDHEX prints the cosignature verifier key (type 0x04)
//
// Cosignature verifier keys (type 0x04) are accepted by verify too. Exit status 1 on failure.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

const algCosignatureV1 = 4

func keyHash(name string, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// cosigVerifier verifies cosignature/v1 signatures: keyhash-stripped bytes are
// u64 big-endian time || Ed25519 signature over "cosignature/v1\ntime <t>\n" || text.
type cosigVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	m := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	return ed25519.Verify(v.key, m, sig[8:])
}

func newVerifier(vkey string) (note.Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) == 3 {
		raw, err := base64.StdEncoding.DecodeString(parts[2])
		if err == nil && len(raw) == 33 && raw[0] == algCosignatureV1 {
			h, err := strconv.ParseUint(parts[1], 16, 32)
			if err != nil || uint32(h) != keyHash(parts[0], raw) {
				return nil, fmt.Errorf("bad cosignature verifier key %q", vkey)
			}
			return &cosigVerifier{parts[0], uint32(h), ed25519.PublicKey(raw[1:])}, nil
		}
	}
	return note.NewVerifier(vkey)
}

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		die("usage: note verify|sign|cosign|cosigner-vkey ...")
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil && os.Args[1] != "cosigner-vkey" {
		die("read: %v", err)
	}
	switch os.Args[1] {
	case "verify":
		var vs []note.Verifier
		for _, k := range os.Args[2:] {
			v, err := newVerifier(k)
			if err != nil {
				die("verifier %q: %v", k, err)
			}
			vs = append(vs, v)
		}
		n, err := note.Open(in, note.VerifierList(vs...))
		if err != nil {
			die("open: %v", err)
		}
		for _, s := range n.Sigs {
			fmt.Printf("%s+%08x\n", s.Name, s.Hash)
		}
	case "sign":
		var ss []note.Signer
		for _, k := range os.Args[2:] {
			s, err := note.NewSigner(k)
			if err != nil {
				die("signer: %v", err)
			}
			ss = append(ss, s)
		}
		out, err := note.Sign(&note.Note{Text: string(in)}, ss...)
		if err != nil {
			die("sign: %v", err)
		}
		os.Stdout.Write(out)
	case "cosign":
		if len(os.Args) != 5 {
			die("usage: note cosign NAME SEEDHEX TIME < note")
		}
		name := os.Args[2]
		seed, err := hex.DecodeString(os.Args[3])
		if err != nil || len(seed) != ed25519.SeedSize {
			die("bad seed")
		}
		t, err := strconv.ParseUint(os.Args[4], 10, 64)
		if err != nil {
			die("bad time")
		}
		split := bytes.LastIndex(in, []byte("\n\n"))
		if split < 0 {
			die("malformed note")
		}
		text := in[:split+1]
		priv := ed25519.NewKeyFromSeed(seed)
		pub := priv.Public().(ed25519.PublicKey)
		h := keyHash(name, append([]byte{algCosignatureV1}, pub...))
		msg := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), text...)
		sig := make([]byte, 12, 12+ed25519.SignatureSize)
		binary.BigEndian.PutUint32(sig[:4], h)
		binary.BigEndian.PutUint64(sig[4:12], t)
		sig = append(sig, ed25519.Sign(priv, msg)...)
		os.Stdout.Write(in)
		fmt.Printf("— %s %s\n", name, base64.StdEncoding.EncodeToString(sig))
	case "cosigner-vkey":
		name := os.Args[2]
		seed, err := hex.DecodeString(os.Args[3])
		if err != nil || len(seed) != ed25519.SeedSize {
			die("bad seed")
		}
		pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		key := append([]byte{algCosignatureV1}, pub...)
		fmt.Printf("%s+%08x+%s\n", name, keyHash(name, key), base64.StdEncoding.EncodeToString(key))
	default:
		die("unknown command %q", os.Args[1])
	}
}
