package specdigest

import (
	"errors"
	"testing"
)

func TestMACSignsWhereAndWhat(t *testing.T) {
	data, err := NewKeyData("k1")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKeys(data)
	if err != nil {
		t.Fatal(err)
	}
	const d = "sha256:aa"
	v := k.Sign("team-a", "TaskRun", d)
	if err := k.Verify("team-a", "TaskRun", d, v); err != nil {
		t.Fatalf("own MAC: %v", err)
	}
	for name, c := range map[string][4]string{
		"another namespace": {"team-b", "TaskRun", d, v},
		"another kind":      {"team-a", "PipelineRun", d, v},
		"another spec":      {"team-a", "TaskRun", "sha256:bb", v},
		"forged sum":        {"team-a", "TaskRun", d, "k1:" + "00"},
		"unknown key":       {"team-a", "TaskRun", d, "k9:00"},
		"no key id":         {"team-a", "TaskRun", d, "00"},
	} {
		if err := k.Verify(c[0], c[1], c[2], c[3]); !errors.Is(err, ErrBadMAC) {
			t.Errorf("%s: verified (%v)", name, err)
		}
	}

	// Rotation: a new current key; runs stamped with the old one verify while it stays.
	more, _ := NewKeyData("k2")
	data[KeyPrefix+"k2"], data[KeyCurrent] = more[KeyPrefix+"k2"], []byte("k2")
	rotated, err := ParseKeys(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := rotated.Verify("team-a", "TaskRun", d, v); err != nil {
		t.Errorf("an in-flight run's MAC stopped verifying after rotation: %v", err)
	}
	if got := rotated.Sign("team-a", "TaskRun", d); got[:3] != "k2:" {
		t.Errorf("new stamps use %q, want the current key k2", got)
	}
	delete(data, KeyPrefix+"k1")
	retired, _ := ParseKeys(data)
	if err := retired.Verify("team-a", "TaskRun", d, v); err == nil {
		t.Error("a MAC of a removed key verified")
	}
}

func TestParseKeysRefusesWeakOrMissing(t *testing.T) {
	for name, data := range map[string]map[string][]byte{
		"no current":      {KeyPrefix + "a": make([]byte, 32)},
		"current missing": {KeyCurrent: []byte("b"), KeyPrefix + "a": make([]byte, 32)},
		"short key":       {KeyCurrent: []byte("a"), KeyPrefix + "a": make([]byte, 16)},
		"bad id":          {KeyCurrent: []byte("A"), KeyPrefix + "A": make([]byte, 32)},
	} {
		if _, err := ParseKeys(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
