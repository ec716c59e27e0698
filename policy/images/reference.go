package images

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

var digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// Image is an image reference as a workload names it.
type Image struct {
	// Ref is the reference exactly as written.
	Ref string
	// Repository is the fully qualified repository.
	Repository name.Repository
	// Tag is the tag the reference names, "latest" when it names none.
	Tag string
	// Digest is the sha256 digest the reference pins, or "".
	Digest string
}

// ParseImage parses a reference the way the kubelet pulls it. A digest must
// be sha256 with 64 lowercase hex digits: registries and runtimes compare
// digests as strings, so any other spelling is refused rather than guessed.
func ParseImage(ref string) (Image, error) {
	if ref == "" {
		return Image{}, fmt.Errorf("%w: the image is empty", ErrInvalidImage)
	}
	if strings.TrimSpace(ref) != ref {
		return Image{}, fmt.Errorf("%w: %q has surrounding whitespace", ErrInvalidImage, ref)
	}
	base, dig, pinned := strings.Cut(ref, "@")
	img := Image{Ref: ref}
	if pinned {
		if strings.Contains(dig, "@") {
			return Image{}, fmt.Errorf("%w: %q has more than one '@'", ErrInvalidImage, ref)
		}
		if !digestPattern.MatchString(dig) {
			return Image{}, fmt.Errorf("%w: %q: the digest %q is not sha256: followed by 64 lowercase hex digits", ErrInvalidImage, ref, dig)
		}
		img.Digest = dig
	}
	tag, err := name.NewTag(base)
	if err != nil {
		return Image{}, fmt.Errorf("%w: %q: %v", ErrInvalidImage, ref, err)
	}
	img.Repository = tag.Repository
	img.Tag = tag.TagStr()
	return img, nil
}

// Pinned returns the reference with the digest appended, as the mutating
// webhook writes it: the tag stays for people, the runtime pulls the digest.
func (i Image) Pinned(digest string) string {
	if i.Digest != "" {
		return i.Ref
	}
	return i.Ref + "@" + digest
}

// DigestRef is the reference of the image by digest.
func (i Image) DigestRef(digest string) name.Digest {
	return i.Repository.Digest(digest)
}

// String is the fully qualified repository, as globs match it.
func (i Image) String() string { return i.Repository.Name() }
