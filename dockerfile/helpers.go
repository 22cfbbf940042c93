package dockerfile

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/internal/ref"
)

// ErrUnknownImage is matched by the error of image_tag for a name that is
// neither a scanned image nor in base_images.
var ErrUnknownImage = errors.New("image not found")

// ErrUnknownUser is matched by the error of add_user for a user missing from
// known_uid_mappings.
var ErrUnknownUser = errors.New("no uid mapping")

// helpers are the functions docker-pkg gives templates, shared by both
// dialects. They only read their fields, so one value serves every render.
type helpers struct {
	registry, namespace  string
	aptOptions, aptProxy string
	uids                 map[string]int
	known                map[string][]string // image name -> full labels
	log                  *slog.Logger
}

func newHelpers(cfg *config.Config, images map[string]string, log *slog.Logger) *helpers {
	h := &helpers{
		registry:   cfg.Registry,
		namespace:  cfg.Namespace,
		aptOptions: cfg.AptOptions,
		aptProxy:   cfg.AptOnlyProxy,
		uids:       cfg.KnownUIDMappings,
		known:      map[string][]string{},
		log:        log,
	}
	add := func(name, label string) {
		for _, l := range h.known[name] {
			if l == label {
				return
			}
		}
		h.known[name] = append(h.known[name], label)
	}
	for name, label := range images {
		add(name, label)
	}
	for _, label := range cfg.BaseImages {
		name, _, _ := ref.SplitLabel(label)
		add(name, label)
	}
	for _, labels := range h.known {
		sort.Strings(labels)
	}
	return h
}

// helper is one function docker-pkg gives templates, registered into both
// dialects from one table (table): a filter in Jinja2 ({{ "x" | name }}),
// a function in Go ({{ name "x" }} or {{ "x" | name }}). A helper added
// to the table appears in both.
type helper struct {
	name string
	fn   func(arg string) (string, error)
	// other handles an argument that is not a string, given as the dialect
	// prints it; the helper then returns the argument unchanged. nil: such
	// an argument is an error.
	other func(printed string)
}

// table is every helper, in the order the package documentation lists
// them.
func (h *helpers) table() []helper {
	return []helper{
		{name: "image_tag", fn: h.imageTag},
		{name: "upstream_version", fn: upstreamVersion},
		{name: "uid", fn: func(user string) (string, error) { return h.uid(user), nil }, other: h.unknownUID},
		{name: "add_user", fn: h.addUser},
		{name: "apt_install", fn: func(packages string) (string, error) { return h.aptInstall(packages), nil }},
		{name: "apt_remove", fn: func(packages string) (string, error) { return h.aptRemove(packages), nil }},
	}
}

// imageTag is the image_tag helper: the full label of the known image named
// registry/namespace/name.
func (h *helpers) imageTag(name string) (string, error) {
	full := ref.Join(h.registry, h.namespace, name)
	switch labels := h.known[full]; len(labels) {
	case 0:
		return "", fmt.Errorf("image_tag: %w: %s", ErrUnknownImage, full)
	case 1:
		return labels[0], nil
	default:
		return "", fmt.Errorf("image_tag: %s is ambiguous: scanned images and base_images give %s",
			full, strings.Join(labels, " and "))
	}
}

// upstreamVersion is the upstream_version helper: the upstream part of a
// full label's tag, as docker-pkg computes it (x/jaeger:1.2.3-1-20241211 ->
// 1.2.3).
func upstreamVersion(label string) (string, error) {
	_, tag, ok := ref.SplitLabel(label)
	if !ok {
		return "", fmt.Errorf("upstream_version: %q is not a full label (name:tag)", label)
	}
	parts := strings.Split(tag, "-")
	if len(parts) == 1 {
		return tag, nil
	}
	version := parts[0] + "-" + parts[1]
	v, ok := ref.ParseDebianVersion(version)
	if !ok {
		return "", fmt.Errorf("upstream_version: %s: invalid Debian version %q", label, version)
	}
	return v.Upstream, nil
}

// uid is the uid helper: the uid of a user from known_uid_mappings, or the
// name itself (a force_numeric_user build then fails on it).
func (h *helpers) uid(user string) string {
	id, ok := h.uids[user]
	if !ok {
		h.unknownUID(user)
		return user
	}
	return strconv.Itoa(id)
}

func (h *helpers) unknownUID(user string) {
	h.log.Warn("UID mapping for user " + user + " not found")
}

// addUser is the add_user helper: the commands creating a system user and
// its group, with the uid from known_uid_mappings.
func (h *helpers) addUser(user string) (string, error) {
	id, ok := h.uids[user]
	if !ok {
		return "", fmt.Errorf("add_user: %w for user '%s' in known_uid_mappings", ErrUnknownUser, user)
	}
	return fmt.Sprintf("groupadd -o -g %[1]d -r %[2]s && useradd -l -o -r -m -d /var/lib/%[2]s -g %[2]s -u %[1]d %[2]s", id, user), nil
}

// aptInstall is the apt_install helper. Newlines in the package list become
// spaces so lists can be written one package a line.
func (h *helpers) aptInstall(packages string) string {
	packages = strings.ReplaceAll(packages, "\n", " ")
	if h.aptProxy == "" {
		return "apt-get update " + h.aptOptions + " \\\n" +
			"    && DEBIAN_FRONTEND=noninteractive \\\n" +
			"    apt-get install " + h.aptOptions + " --yes " + packages + " --no-install-recommends \\\n" +
			"    && apt-get clean && rm -rf /var/lib/apt/lists/* "
	}
	return "echo 'Acquire::http::Proxy \"" + h.aptProxy + "\";' > /etc/apt/apt.conf.d/80_proxy \\\n" +
		"    && apt-get update " + h.aptOptions + " \\\n" +
		"    && DEBIAN_FRONTEND=noninteractive \\\n" +
		"    apt-get install " + h.aptOptions + " --yes " + packages + " --no-install-recommends \\\n" +
		"    && rm -f /etc/apt/apt.conf.d/80_proxy \\\n" +
		"    && apt-get clean && rm -rf /var/lib/apt/lists/* "
}

// aptRemove is the apt_remove helper. Unlike apt_install it keeps newlines,
// and with a proxy it glues a backslash to apt-get: the reference does both.
func (h *helpers) aptRemove(packages string) string {
	cmd := "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get remove --yes --purge " + packages + " \\\n"
	if h.aptProxy == "" {
		return cmd + "    && apt-get clean && rm -rf /var/lib/apt/lists/* "
	}
	return "echo 'Acquire::http::Proxy \"" + h.aptProxy + "\";' > /etc/apt/apt.conf.d/80_proxy  && \\" + cmd +
		"    && rm -f /etc/apt/apt.conf.d/80_proxy \\\n" +
		"    && apt-get clean && rm -rf /var/lib/apt/lists/* "
}
