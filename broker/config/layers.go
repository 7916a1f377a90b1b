package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/viper"
)

// layers resolves [system] and [zookeeper] values through viper: environment variables
// override the file, and a blank value means "use the default".
//
// Keys stay flat: viper's key delimiter is "::" so that MetaQ's dotted names
// ("zk.zkConnect") are single keys, and "<section>::<key>" addresses a value.
type layers struct {
	v       *viper.Viper
	file    string
	envName map[string]string // "<section>::<lower key>" → variable name (when env is on)
}

const keyDelim = "::"

func newLayers(d *document, o options) (*layers, error) {
	l := &layers{
		v:       viper.NewWithOptions(viper.KeyDelimiter(keyDelim)),
		file:    d.file,
		envName: map[string]string{},
	}
	if err := l.v.MergeConfigMap(map[string]any{
		sectionSystem:      toAnyMap(d.system),
		sectionZooKeeper:   toAnyMap(d.zookeeper),
		sectionReplication: toAnyMap(d.replication),
		sectionSecurity:    toAnyMap(d.security),
	}); err != nil {
		return nil, err
	}
	if !o.env {
		return l, nil
	}
	for section, keys := range map[string][]string{sectionSystem: systemKeys, sectionZooKeeper: zookeeperKeys, sectionReplication: replicationKeys, sectionSecurity: securityKeys} {
		for _, key := range keys {
			name := EnvVar(o.envPrefix, section, key)
			vk := section + keyDelim + strings.ToLower(key)
			if err := l.v.BindEnv(vk, name); err != nil {
				return nil, err
			}
			l.envName[vk] = name
		}
	}
	return l, l.checkEnv(o.envPrefix)
}

// EnvVar returns the environment variable that overrides key of section:
// <PREFIX>_<SECTION>_<KEY>, upper case, with the "zk." of ZooKeeper keys dropped, e.g.
// METAQ_SYSTEM_SERVERPORT and METAQ_ZOOKEEPER_ZKCONNECT; other dots become "_"
// (METAQ_SECURITY_TLS_CERTFILE).
func EnvVar(prefix, section, key string) string {
	name := strings.ToUpper(section + "_" + strings.ReplaceAll(strings.TrimPrefix(key, "zk."), ".", "_"))
	if prefix != "" {
		name = strings.ToUpper(prefix) + "_" + name
	}
	return name
}

// checkEnv rejects variables in our namespace (<PREFIX>_SYSTEM_*, <PREFIX>_ZOOKEEPER_*)
// that name no key, so a typo in a deployment manifest does not go unnoticed.
func (l *layers) checkEnv(prefix string) error {
	known := make([]string, 0, len(l.envName))
	bound := map[string]bool{}
	for _, n := range l.envName {
		known = append(known, n)
		bound[n] = true
	}
	p := ""
	if prefix != "" {
		p = strings.ToUpper(prefix) + "_"
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, p+"SYSTEM_") && !strings.HasPrefix(name, p+"ZOOKEEPER_") && !strings.HasPrefix(name, p+"REPLICATION_") && !strings.HasPrefix(name, p+"SECURITY_") || bound[name] {
			continue
		}
		msg := "unknown environment variable " + name
		if s := nearestOf(name, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		return &Error{Kind: ErrUnknownKey, Key: name, Msg: msg}
	}
	return nil
}

// get returns the effective text of section/key and where it came from ("" = the file).
func (l *layers) get(section, key string) (value, source string) {
	vk := section + keyDelim + strings.ToLower(key)
	if name, ok := l.envName[vk]; ok {
		if v, set := os.LookupEnv(name); set && v != "" {
			source = name
		}
	}
	text, err := scalarText(l.v.Get(vk))
	if err != nil {
		text = fmt.Sprint(l.v.Get(vk))
	}
	return text, source
}

func toAnyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
