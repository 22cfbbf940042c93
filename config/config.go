package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker-pkg/docker-pkg/internal/ref"
	"gopkg.in/yaml.v3"
)

// ErrDuplicateKey is matched by the error Load returns for a file that sets
// a key twice in one mapping.
var ErrDuplicateKey = errors.New("key set twice")

// ErrNotExist is matched (errors.Is) by the error Load returns when the -c
// file is missing.
var ErrNotExist = errors.New("config file does not exist")

// NotExistError says, in the reference's words, that the -c file is missing.
type NotExistError struct{ Path string }

func (e *NotExistError) Error() string        { return "Config file " + e.Path + " does not exist" }
func (e *NotExistError) Is(target error) bool { return target == ErrNotExist }

// Limits are the resource limits applied to every build container
// (container_limits: "memory=N,memswap=N,cpushares=N,cpusetcpus=S").
type Limits struct {
	Memory     int64
	MemorySwap int64
	CPUShares  int64
	CPUSetCPUs string
}

// Secret names where a BuildKit secret's value comes from: exactly one of
// Env and File is set.
type Secret struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// Remote is one BuildKit daemon of builders:.
type Remote struct {
	Name string
	// Address is how to reach it: tcp://HOST:PORT, unix:///PATH,
	// kube-pod://POD (kubectl), docker-container://NAME (docker).
	Address string
	Jobs    int // images built on it at once; default 1
	// Platforms it may build, normalized; none: those its workers list.
	Platforms []string
	// TLS is the mutual TLS of a tcp address: PEM files, relative paths
	// taken from the folder of the configuration file. nil: plain.
	TLS *TLSFiles
}

// TLSFiles are the PEM files of mutual TLS with a builder.
type TLSFiles struct {
	CA, Cert, Key string
	// ServerName is the name the builder's certificate must hold; default
	// the address's host.
	ServerName string
}

// Config is the merged configuration. Fields hold the keys docker-pkg reads
// itself; Vars holds every key, as the templates see them.
type Config struct {
	Registry           string
	Namespace          string
	Username           string
	Password           string
	BaseImages         []string
	AptOptions         string
	HTTPProxy          string
	AptOnlyProxy       string
	ScanWorkers        int
	FallbackAuthor     string
	FallbackEmail      string
	Distribution       string
	UpdateID           string
	CABundle           string
	ForceNumericUser   bool
	KnownUIDMappings   map[string]int
	VerifyCommand      string
	VerifyArgs         []string
	VerifyTimeout      time.Duration // verify_timeout, whole seconds; 0: no limit
	ContainerLimits    *Limits
	TemplateEngine     string // "jinja2" (default) or "go"
	Builder            string // "classic" (default) or "buildkit"
	InsecureRegistries []string
	Secrets            map[string]Secret
	// Builders are the BuildKit daemons images are built on (builders);
	// none: the local engine, with Builder.
	Builders []Remote
	// BuildCache is where builds keep their cache: "none" (the builder's
	// own, the default) or "registry" (<repository>:buildcache, shared by
	// every builder).
	BuildCache string
	// Platforms are the platforms every image is built for (platforms),
	// normalized (linux/arm64); none: the builder's own.
	Platforms []string

	// Vars is every key of the merged configuration, known or not, but
	// password: the template variables.
	Vars map[string]any
}

// Defaults returns the built-in configuration, before any file is read.
// http_proxy, apt_only_proxy, username and ca_bundle are defined with no
// value (nil, the reference's None), so that a template can test them
// ({% if http_proxy %}); password is not a template variable at all.
func Defaults() map[string]any {
	return map[string]any{
		"registry":           "",
		"namespace":          "",
		"username":           nil,
		"http_proxy":         nil,
		"apt_only_proxy":     nil,
		"ca_bundle":          nil,
		"base_images":        []any{},
		"apt_options":        "",
		"scan_workers":       8,
		"fallback_author":    "Author",
		"fallback_email":     "email@domain",
		"distribution":       "wikimedia",
		"update_id":          "s",
		"force_numeric_user": false,
		"known_uid_mappings": map[string]any{"root": 0, "www-data": 33, "nobody": 65534},
		"verify_command":     "/bin/bash",
		"verify_args":        []any{"-c", "{path}/test.sh {image}"},
		"verify_timeout":     1800,
		"template_engine":    "jinja2",
		"builder":            "classic",
		"build_cache":        "none",
	}
}

// UserFile is the path of the per-user configuration file:
// $XDG_CONFIG_HOME/docker-pkg.yaml, or ~/.config/docker-pkg.yaml.
func UserFile() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "docker-pkg.yaml")
}

// Load reads the configuration as docker-pkg does: the defaults, then the
// user file if it exists, then path, which must exist. Each is a shallow
// merge over the previous.
func Load(path string) (*Config, error) {
	return LoadFiles(UserFile(), path)
}

// LoadFiles is Load with the user file named explicitly ("" for none).
func LoadFiles(userFile, path string) (*Config, error) {
	merged := Defaults()
	lines := map[string]position{}
	if userFile != "" {
		if _, err := os.Stat(userFile); err == nil {
			if err := mergeFile(merged, lines, userFile); err != nil {
				return nil, err
			}
		}
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &NotExistError{Path: path}
		}
		return nil, fmt.Errorf("reading config file %s: %w", path, err)
	}
	if err := mergeFile(merged, lines, path); err != nil {
		return nil, err
	}
	if proxy, ok := merged["http_proxy"]; ok && proxy != nil {
		if ap, set := merged["apt_only_proxy"]; !set || ap == nil {
			merged["apt_only_proxy"] = proxy
		}
	}
	return fromMap(merged, lines)
}

// position says where a key was last set, for error messages.
type position struct {
	file string
	line int
}

func (p position) String() string {
	if p.file == "" {
		return "built-in defaults"
	}
	return fmt.Sprintf("%s:%d", p.file, p.line)
}

func mergeFile(merged map[string]any, lines map[string]position, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config file %s: %w", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parsing config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 { // an empty file is an empty mapping
		return nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil
	}
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: config must be a mapping of key: value", path, top.Line)
	}
	if errs := duplicates(path, top, nil); len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		var value any
		if err := v.Decode(&value); err != nil {
			return fmt.Errorf("%s:%d: key %s: %w", path, v.Line, k.Value, err)
		}
		merged[k.Value] = value
		lines[k.Value] = position{path, k.Line}
	}
	return nil
}

// duplicates finds the keys set twice in a mapping of n, at any depth:
// YAML forbids them, and a silent "last one wins" hides a mistake.
func duplicates(path string, n *yaml.Node, errs []error) []error {
	if n.Kind == yaml.MappingNode {
		first := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				continue
			}
			if line, ok := first[k.Value]; ok {
				errs = append(errs, fmt.Errorf("%s:%d: %w: %s is already set at line %d", path, k.Line, ErrDuplicateKey, k.Value, line))
				continue
			}
			first[k.Value] = k.Line
		}
	}
	for _, c := range n.Content {
		errs = duplicates(path, c, errs)
	}
	return errs
}

func fromMap(m map[string]any, lines map[string]position) (*Config, error) {
	c := &Config{Vars: m}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", lines[key], key, fmt.Sprintf(format, args...)))
	}
	str := func(key string) string {
		v, ok := m[key]
		if !ok || v == nil {
			return ""
		}
		switch v := v.(type) {
		case string:
			return v
		case int, float64, bool:
			return fmt.Sprint(v)
		}
		bad(key, "want a string, got %s", describe(v))
		return ""
	}
	strs := func(key string) []string {
		v, ok := m[key]
		if !ok || v == nil {
			return nil
		}
		list, ok := v.([]any)
		if !ok {
			bad(key, "want a list of strings, got %s", describe(v))
			return nil
		}
		out := make([]string, 0, len(list))
		for _, item := range list {
			s, ok := item.(string)
			if !ok {
				bad(key, "want a list of strings, got an item that is %s", describe(item))
				continue
			}
			out = append(out, s)
		}
		return out
	}

	c.Registry = str("registry")
	c.Namespace = str("namespace")
	// Checked here, not when the first image_tag or push fails; a registry
	// holding a password is refused without repeating it.
	if err := ref.CheckRegistry(c.Registry); err != nil {
		bad("registry", "%v", err)
	}
	if err := ref.CheckNamespace(c.Namespace); err != nil {
		bad("namespace", "%v", err)
	}
	c.Username = str("username")
	c.Password = str("password")
	c.BaseImages = strs("base_images")
	c.AptOptions = str("apt_options")
	c.HTTPProxy = str("http_proxy")
	c.AptOnlyProxy = str("apt_only_proxy")
	c.FallbackAuthor = str("fallback_author")
	c.FallbackEmail = str("fallback_email")
	c.Distribution = str("distribution")
	c.UpdateID = str("update_id")
	c.CABundle = str("ca_bundle")
	c.VerifyCommand = str("verify_command")
	c.VerifyArgs = strs("verify_args")
	c.InsecureRegistries = strs("insecure_registries")
	c.TemplateEngine = str("template_engine")
	c.Builder = str("builder")

	switch v := m["scan_workers"].(type) {
	case int:
		if v < 1 {
			bad("scan_workers", "must be at least 1, got %d", v)
		}
		c.ScanWorkers = v
	default:
		bad("scan_workers", "want a whole number, got %s", describe(v))
	}
	switch v := m["verify_timeout"].(type) {
	case int:
		if v < 0 || v > 1<<31 {
			bad("verify_timeout", "want seconds, 0 for no limit, got %d", v)
		}
		c.VerifyTimeout = time.Duration(v) * time.Second
	default:
		bad("verify_timeout", "want a whole number of seconds (0 for no limit), got %s", describe(v))
	}
	switch v := m["force_numeric_user"].(type) {
	case bool:
		c.ForceNumericUser = v
	case nil:
	default:
		bad("force_numeric_user", "want true or false, got %s", describe(v))
	}
	if raw, ok := m["known_uid_mappings"].(map[string]any); ok {
		c.KnownUIDMappings = make(map[string]int, len(raw))
		for name, id := range raw {
			n, ok := id.(int)
			if !ok || n < 0 {
				bad("known_uid_mappings", "uid of %s must be a non-negative number, got %s", name, describe(id))
				continue
			}
			c.KnownUIDMappings[name] = n
		}
	} else if m["known_uid_mappings"] != nil {
		bad("known_uid_mappings", "want a mapping of user name to uid, got %s", describe(m["known_uid_mappings"]))
	}
	if v, ok := m["container_limits"]; ok && v != nil {
		limits, err := ParseLimits(v)
		if err != nil {
			bad("container_limits", "%v", err)
		}
		c.ContainerLimits = limits
	}
	switch c.TemplateEngine {
	case "jinja2", "go":
	default:
		bad("template_engine", "want jinja2 or go, got %q", c.TemplateEngine)
	}
	if err := CheckBuilder(c.Builder); err != nil {
		bad("builder", "%v", err)
	}
	if v, ok := m["secrets"]; ok && v != nil {
		c.Secrets = parseSecrets(v, func(format string, args ...any) { bad("secrets", format, args...) })
	}
	c.Platforms = platformList(strs("platforms"), func(format string, args ...any) { bad("platforms", format, args...) })
	if v, ok := m["builders"]; ok && v != nil {
		c.Builders = parseRemotes(v, filepath.Dir(lines["builders"].file), func(format string, args ...any) { bad("builders", format, args...) })
	}
	c.BuildCache = str("build_cache")
	switch c.BuildCache {
	case "none", "registry":
	default:
		bad("build_cache", "want none or registry, got %q", c.BuildCache)
	}
	// A builder elsewhere sees neither this machine's engine nor its
	// files: what it builds on and what it built travel through the
	// registry.
	if c.Registry == "" {
		if len(c.Builders) > 0 {
			bad("builders", "builders hand images over through the registry: set registry")
		}
		if c.BuildCache == "registry" {
			bad("build_cache", "a registry build cache needs a registry: set registry")
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// The password is the one key that is not a template variable: a
	// template that printed it would bake a credential into a layer.
	delete(c.Vars, "password")
	return c, nil
}

func parseSecrets(v any, bad func(string, ...any)) map[string]Secret {
	raw, ok := v.(map[string]any)
	if !ok {
		bad("want a mapping of id to {env: NAME} or {file: PATH}, got %s", describe(v))
		return nil
	}
	out := make(map[string]Secret, len(raw))
	for id, spec := range raw {
		fields, ok := spec.(map[string]any)
		env, envOK := fields["env"].(string)
		file, fileOK := fields["file"].(string)
		if !ok || len(fields) != 1 || (!envOK && !fileOK) {
			bad("secret %s: want exactly one of env: NAME or file: PATH", id)
			continue
		}
		out[id] = Secret{Env: env, File: file}
	}
	return out
}

// ParseLimits reads container_limits, either the reference's string form
// "memory=N,memswap=N,cpushares=N,cpusetcpus=S" or the same keys as a mapping.
func ParseLimits(v any) (*Limits, error) {
	items := map[string]string{}
	switch v := v.(type) {
	case string:
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			key, value, ok := strings.Cut(item, "=")
			if !ok || strings.TrimSpace(value) == "" {
				return nil, fmt.Errorf("item %q is not key=value", item)
			}
			items[strings.TrimSpace(key)] = strings.TrimSpace(value)
		}
	case map[string]any:
		for key, value := range v {
			items[key] = fmt.Sprint(value)
		}
	default:
		return nil, fmt.Errorf("want \"memory=N,memswap=N,cpushares=N,cpusetcpus=S\", got %s", describe(v))
	}
	l := &Limits{}
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		value := items[key]
		var target *int64
		switch key {
		case "memory":
			target = &l.Memory
		case "memswap":
			target = &l.MemorySwap
		case "cpushares":
			target = &l.CPUShares
		case "cpusetcpus":
			l.CPUSetCPUs = value
			continue
		default:
			return nil, fmt.Errorf("unknown limit %q (known: memory, memswap, cpushares, cpusetcpus)", key)
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: not a whole number", key, value)
		}
		*target = n
	}
	return l, nil
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("the string %q", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%v", v)
	}
}

// CheckBuilder says why name is not a builder docker-pkg knows: classic
// (the Engine's classic builder) or buildkit (the Engine's BuildKit).
func CheckBuilder(name string) error {
	switch name {
	case "classic", "buildkit":
		return nil
	}
	return fmt.Errorf("want classic or buildkit, got %q", name)
}
