package config

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/viper"
)

// Option adjusts how Load and Parse read a configuration.
type Option func(*options)

type options struct {
	envPrefix string
	env       bool
	format    string
	logger    *slog.Logger
}

// WithEnvPrefix sets the environment variable prefix (default "METAQ"; "" for none).
func WithEnvPrefix(prefix string) Option { return func(o *options) { o.envPrefix = prefix } }

// WithoutEnv ignores environment variables.
func WithoutEnv() Option { return func(o *options) { o.env = false } }

// WithFormat sets the file format ("ini", "yaml", "toml" or "json") instead of
// deriving it from the file extension.
func WithFormat(format string) Option { return func(o *options) { o.format = format } }

// WithLogger logs Config.Warnings at warn level (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// SamplePath is where the repository keeps a commented sample configuration.
const SamplePath = "conf/server.ini"

// Load reads the configuration file at path, applies environment variables and
// validates the result. The format follows the extension: .ini (MetaQ server.ini,
// also used for unknown extensions), .yaml/.yml, .toml or .json.
func Load(path string, opts ...Option) (*Config, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &Error{Kind: ErrMissing, File: path, Cause: err, Msg: fmt.Sprintf(
			"no such file; start from the sample %s in the metaq repository and set brokerId, dataPath and zk.zkConnect",
			SamplePath)}
	}
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	o := newOptions(opts)
	if o.format == "" {
		o.format = formatOf(path)
	}
	c, err := parse(filepath.Base(path), raw, o)
	if err != nil {
		return nil, err
	}
	c.path = path
	return c, nil
}

// Parse is Load for configuration text already in memory; format is "ini", "yaml",
// "toml" or "json".
func Parse(raw []byte, format string, opts ...Option) (*Config, error) {
	o := newOptions(opts)
	if o.format == "" {
		o.format = format
	}
	return parse("server."+o.format, raw, o)
}

func newOptions(opts []Option) options {
	o := options{envPrefix: "METAQ", env: true}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func formatOf(path string) string {
	switch ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), ".")); ext {
	case "yaml", "yml", "toml", "json":
		return ext
	default:
		return "ini"
	}
}

func parse(file string, raw []byte, o options) (*Config, error) {
	ini := &iniCodec{file: file}
	registry := viper.NewCodecRegistry()
	if err := registry.RegisterCodec("ini", ini); err != nil {
		return nil, err
	}
	format := strings.ToLower(o.format)
	if format == "yml" {
		format = "yaml"
	}
	dec, err := registry.Decoder(format)
	if err != nil || (format != "ini" && format != "yaml" && format != "toml" && format != "json") {
		return nil, &Error{Kind: ErrBadValue, File: file, Msg: fmt.Sprintf(
			"unsupported format %q; use ini, yaml, toml or json", o.format)}
	}
	tree := map[string]any{}
	if err := dec.Decode(raw, tree); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, &Error{Kind: ErrBadValue, File: file, Cause: err, Msg: fmt.Sprintf("not valid %s: %v", format, err)}
	}
	doc := &document{file: file, warnings: ini.warnings}
	if err := doc.load(tree); err != nil {
		return nil, err
	}
	layers, err := newLayers(doc, o)
	if err != nil {
		return nil, err
	}
	c, err := build(doc, layers)
	if err != nil {
		return nil, err
	}
	c.raw = append([]byte(nil), raw...)
	c.checksum = crc32.ChecksumIEEE(raw)
	if o.logger != nil {
		for _, w := range c.warnings {
			o.logger.Warn("config: " + w)
		}
	}
	return c, nil
}

// document is the file's content after key validation: canonical key → value text.
type document struct {
	file        string
	system      map[string]string
	zookeeper   map[string]string
	replication map[string]string
	security    map[string]string
	topics      map[string]map[string]string // topic name or pattern → key → value
	warnings    []string
}

func (d *document) load(tree map[string]any) error {
	d.system, d.zookeeper, d.topics = map[string]string{}, map[string]string{}, map[string]map[string]string{}
	d.replication, d.security = map[string]string{}, map[string]string{}
	seen := map[string]string{}
	for _, name := range sortedKeys(tree) {
		lname := strings.ToLower(strings.TrimSpace(name))
		if prev, dup := seen[lname]; dup {
			return &Error{Kind: ErrBadValue, File: d.file, Msg: fmt.Sprintf("sections %q and %q are the same; merge them", prev, name)}
		}
		seen[lname] = name
		var err error
		switch {
		case lname == sectionSystem:
			err = d.section(sectionSystem, tree[name], d.system, newKeySet(systemKeys), ignoredSystemKeys)
		case lname == sectionZooKeeper:
			err = d.section(sectionZooKeeper, tree[name], d.zookeeper, newKeySet(zookeeperKeys), ignoredZooKeeperKeys)
		case lname == sectionReplication:
			err = d.section(sectionReplication, tree[name], d.replication, newKeySet(replicationKeys), nil)
		case lname == sectionSecurity:
			err = d.section(sectionSecurity, tree[name], d.security, newKeySet(securityKeys), nil)
		case strings.HasPrefix(lname, topicPrefix):
			err = d.topic(strings.TrimSpace(strings.TrimSpace(name)[len(topicPrefix):]), tree[name])
		case lname == "topics":
			err = d.topicMap(tree[name])
		default:
			return d.unknownSection(name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *document) unknownSection(name string) error {
	msg := fmt.Sprintf("unknown section [%s]", name)
	if s := nearestOf(name, []string{sectionSystem, sectionZooKeeper, sectionReplication, sectionSecurity, "topics"}); s != "" {
		msg += fmt.Sprintf(" (did you mean [%s]?)", s)
	} else {
		msg += " (sections are [system], [zookeeper], [replication], [security] and [topic=<name>])"
	}
	return &Error{Kind: ErrUnknownKey, File: d.file, Msg: msg}
}

func (d *document) topicMap(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return &Error{Kind: ErrBadValue, File: d.file, Section: "topics", Msg: "want a table of topic name → settings"}
	}
	for _, name := range sortedKeys(m) {
		if err := d.topic(name, m[name]); err != nil {
			return err
		}
	}
	return nil
}

func (d *document) topic(name string, v any) error {
	label := topicPrefix + name
	if err := checkTopicSection(name); err != nil {
		return &Error{Kind: ErrBadValue, File: d.file, Section: label, Msg: err.Error()}
	}
	if _, dup := d.topics[name]; dup {
		return &Error{Kind: ErrBadValue, File: d.file, Section: label, Msg: "topic configured twice"}
	}
	kv := map[string]string{}
	if err := d.section(label, v, kv, newKeySet(topicKeys), nil); err != nil {
		return err
	}
	d.topics[name] = kv
	return nil
}

// section validates one section's keys into out (canonical key → value text).
func (d *document) section(label string, v any, out map[string]string, valid keySet, ignored []string) error {
	flat := map[string]string{}
	if v != nil { // an empty YAML section decodes as nil
		m, ok := v.(map[string]any)
		if !ok {
			return &Error{Kind: ErrBadValue, File: d.file, Section: label, Msg: "want a section of key = value settings"}
		}
		if err := flatten("", m, flat); err != nil {
			return &Error{Kind: ErrBadValue, File: d.file, Section: label, Msg: err.Error()}
		}
	}
	ignoredSet := newKeySet(ignored)
	for _, key := range sortedKeys(flat) {
		canon, ok := valid.canonical(key)
		switch {
		case ok:
			out[canon] = flat[key]
		case ignoredSet[strings.ToLower(key)] != "" || (label != sectionSystem && label != sectionZooKeeper && label != sectionReplication && label != sectionSecurity &&
			strings.HasPrefix(strings.ToLower(key), ignoredTopicKeyPrefix)):
			if flat[key] != "" {
				d.warnings = append(d.warnings, fmt.Sprintf("%s [%s]: %s is a MetaQ-only setting and is ignored", d.file, label, key))
			}
		default:
			return d.unknownKey(label, key, valid)
		}
	}
	return nil
}

func (d *document) unknownKey(label, key string, valid keySet) error {
	msg := fmt.Sprintf("unknown key %q", key)
	if s := valid.nearest(key); s != "" && !strings.EqualFold(s, key) {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if c, ok := newKeySet(systemKeys).canonical(key); ok {
		msg += fmt.Sprintf(" (%s belongs in [system])", c)
	} else if c, ok := newKeySet(zookeeperKeys).canonical(key); ok {
		msg += fmt.Sprintf(" (%s belongs in [zookeeper])", c)
	}
	return &Error{Kind: ErrUnknownKey, File: d.file, Section: label, Key: key, Msg: msg}
}

// flatten turns nested tables into dotted keys ({zk: {zkConnect: x}} → zk.zkConnect) and
// scalars into their text.
func flatten(prefix string, m map[string]any, out map[string]string) error {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			if err := flatten(key, sub, out); err != nil {
				return err
			}
			continue
		}
		s, err := scalarText(v)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		out[key] = s
	}
	return nil
}

func scalarText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), nil
	case float32, float64:
		return strconv.FormatFloat(toFloat(x), 'f', -1, 64), nil
	default:
		return "", fmt.Errorf("want a single value, got %T", v)
	}
}

func toFloat(v any) float64 {
	if f, ok := v.(float32); ok {
		return float64(f)
	}
	return v.(float64)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
