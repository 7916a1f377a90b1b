package config

import (
	"regexp"
	"strings"
)

// Redacted is the placeholder that replaces a secret's value in Redact's output.
const Redacted = "<redacted>"

// keyAssign matches the start of one "key = value" / "key: value" /
// "\"key\": value" assignment in any of the config formats (INI, YAML, TOML,
// JSON): group 1 is the key (quotes excluded); the match ends where the value
// begins.
var keyAssign = regexp.MustCompile(`(?m)(?:^|[\s{,])["']?([A-Za-z0-9_.\-]+)["']?[ \t]*[:=][ \t]*`)

// secretWords mark a key whose value is a secret (matched in lower case).
var secretWords = []string{"auth", "password", "passwd", "pwd", "secret", "token", "credential", "apikey", "privatekey"}

// IsSecretKey reports whether key names a secret (zk.zkAuth, a password, a
// token...). A key naming a file or path that holds a secret (zk.zkAuthFile,
// adminTokenFile) is not itself a secret.
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		k = k[i+1:]
	}
	for _, suffix := range []string{"file", "path", "dir"} {
		if strings.HasSuffix(k, suffix) {
			return false
		}
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// Redact returns the configuration text raw with the value of every secret
// key (IsSecretKey) replaced by Redacted, in any of the supported formats: a
// quoted value up to its closing quote, any other up to the end of the line.
// The rest is unchanged byte for byte. `stats config` shows this, never the file.
func Redact(raw []byte) []byte {
	var out []byte
	done := 0 // raw[:done] is in out
	for _, m := range keyAssign.FindAllSubmatchIndex(raw, -1) {
		if m[0] < done || !IsSecretKey(string(raw[m[2]:m[3]])) {
			continue
		}
		v, end := m[1], valueEnd(raw, m[1])
		if end == v {
			continue // no value here (e.g. a YAML mapping follows on the next lines)
		}
		repl := Redacted
		if q := raw[v]; q == '"' || q == '\'' {
			repl = string(q) + Redacted + string(q)
		}
		out = append(append(out, raw[done:v]...), repl...)
		done = end
	}
	if done == 0 {
		return append([]byte(nil), raw...)
	}
	return append(out, raw[done:]...)
}

// valueEnd returns where the value starting at raw[i] ends: after its closing
// quote, or at the end of the line.
func valueEnd(raw []byte, i int) int {
	if i < len(raw) && (raw[i] == '"' || raw[i] == '\'') {
		q := raw[i]
		for j := i + 1; j < len(raw) && raw[j] != '\n'; j++ {
			switch raw[j] {
			case '\\':
				j++
			case q:
				return j + 1
			}
		}
	}
	j := i
	for j < len(raw) && raw[j] != '\n' && raw[j] != '\r' {
		j++
	}
	return j
}
