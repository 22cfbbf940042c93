package image

// An image counts as built only once its test has passed. Until then it
// also carries UnverifiedLabel, given by the same build, before its own
// label: a run killed or interrupted between the build and the end of the
// test leaves that mark, and the next plan rebuilds the image. An image
// whose test fails keeps only FailedLabel, for debugging, so its own label
// is free and the next run builds it again.

// Suffixes of the marker tags.
const (
	unverifiedSuffix = "-unverified"
	failedSuffix     = "-failed"
)

// maxTag is the longest tag Docker accepts.
const maxTag = 128

// UnverifiedLabel is the label an image carries from its build until its
// test passes: Repo:Tag-unverified.
func (img *Image) UnverifiedLabel() string {
	return img.Repo + ":" + markTag(img.Tag, unverifiedSuffix)
}

// FailedLabel is the label an image whose test failed is kept under:
// Repo:Tag-failed.
func (img *Image) FailedLabel() string { return img.Repo + ":" + markTag(img.Tag, failedSuffix) }

// markTag is tag with suffix, its end cut so the result stays a tag Docker
// accepts.
func markTag(tag, suffix string) string {
	if len(tag)+len(suffix) > maxTag {
		tag = tag[:maxTag-len(suffix)]
	}
	return tag + suffix
}
