package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// SetValues points a Helm values file at an image: image.repository and
// image.digest are rewritten in place, every other line (and comment) kept.
// Both keys must be present in the top-level image: block.
func SetValues(file string, img name.Digest) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out, err := setImage(string(b), img.Context().String(), img.DigestStr())
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return os.WriteFile(file, []byte(out), 0o644)
}

// setImage rewrites the repository and digest lines of the top-level image
// block of a values document.
func setImage(doc, repository, digest string) (string, error) {
	lines := strings.SplitAfter(doc, "\n")
	in, found := false, map[string]bool{}
	for i, l := range lines {
		trimmed := strings.TrimRight(l, "\r\n")
		switch {
		case trimmed == "image:":
			in = true
			continue
		case trimmed == "" || strings.HasPrefix(trimmed, " "):
		default:
			in = false
		}
		if !in {
			continue
		}
		for key, value := range map[string]string{"repository": repository, "digest": digest} {
			if prefix := "  " + key + ":"; strings.HasPrefix(trimmed, prefix) {
				lines[i] = prefix + " " + value + strings.TrimPrefix(l, trimmed)
				found[key] = true
			}
		}
	}
	for _, key := range []string{"repository", "digest"} {
		if !found[key] {
			return "", fmt.Errorf("no image.%s line to set (want it in the top-level image: block, indented two spaces)", key)
		}
	}
	return strings.Join(lines, ""), nil
}
