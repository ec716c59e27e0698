package specdigest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// MACAnnotation holds the stamp's keyed MAC, "<key id>:<hex HMAC-SHA256>",
// over the run's namespace, kind and spec digest. The digest alone can be
// computed by anyone; the MAC only by who holds a stamp key (the run guard),
// so a run that was never admitted by the run guard — created where it does
// not run, or copied from another namespace — cannot carry a valid one.
const MACAnnotation = "tollgate.dev/spec-mac"

// Stamp key Secret data: "current" names the key new stamps are made with;
// "key.<id>" holds each key (at least 32 bytes). Rotation: add a key, make
// it current, and remove the old one once no run stamped with it awaits
// signing.
const (
	KeyCurrent = "current"
	KeyPrefix  = "key."
)

var keyID = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$`)

// Keys are the stamp keys in force.
type Keys struct {
	current string
	byID    map[string][]byte
}

// ParseKeys reads stamp keys from a Secret's data.
func ParseKeys(data map[string][]byte) (*Keys, error) {
	k := &Keys{current: strings.TrimSpace(string(data[KeyCurrent])), byID: map[string][]byte{}}
	for name, v := range data {
		id, ok := strings.CutPrefix(name, KeyPrefix)
		if !ok {
			continue
		}
		if !keyID.MatchString(id) {
			return nil, fmt.Errorf("stamp key %q: the id must be 1-32 lowercase letters, digits and '-'", name)
		}
		if len(v) < 32 {
			return nil, fmt.Errorf("stamp key %q has %d bytes; at least 32 are needed", name, len(v))
		}
		k.byID[id] = v
	}
	if k.current == "" {
		return nil, fmt.Errorf("the stamp key Secret names no %q key", KeyCurrent)
	}
	if _, ok := k.byID[k.current]; !ok {
		return nil, fmt.Errorf("the current stamp key %q has no %s%s entry", k.current, KeyPrefix, k.current)
	}
	return k, nil
}

// NewKeyData returns Secret data with one fresh random key, current.
func NewKeyData(id string) (map[string][]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return map[string][]byte{KeyCurrent: []byte(id), KeyPrefix + id: key}, nil
}

// IDs returns the key ids, sorted.
func (k *Keys) IDs() []string {
	out := make([]string, 0, len(k.byID))
	for id := range k.byID {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func mac(key []byte, namespace, kind, digest string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("tollgate.dev/spec-mac/v1\x00" + namespace + "\x00" + kind + "\x00" + digest))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns the MAC annotation value for a run's stamp.
func (k *Keys) Sign(namespace, kind, digest string) string {
	return k.current + ":" + mac(k.byID[k.current], namespace, kind, digest)
}

// ErrBadMAC is a MAC that does not verify.
var ErrBadMAC = errors.New("the stamp's MAC does not verify")

// Verify checks a MAC annotation value against the run's stamp, with any
// key in force (so runs stamped before a rotation still verify).
func (k *Keys) Verify(namespace, kind, digest, value string) error {
	id, sum, ok := strings.Cut(value, ":")
	if !ok || sum == "" {
		return fmt.Errorf("%w: %q is not <key id>:<hex>", ErrBadMAC, value)
	}
	key, ok := k.byID[id]
	if !ok {
		return fmt.Errorf("%w: key %q is not among the stamp keys in force (%s)", ErrBadMAC, id, strings.Join(k.IDs(), ", "))
	}
	if !hmac.Equal([]byte(sum), []byte(mac(key, namespace, kind, digest))) {
		return fmt.Errorf("%w: it was not made by the run guard for this spec in namespace %s", ErrBadMAC, namespace)
	}
	return nil
}
