package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRedactHidesSecretsInEveryFormat(t *testing.T) {
	const secret = "s3cr3t,}x"
	for name, raw := range map[string]string{
		"ini":           "[zookeeper]\nzk.zkConnect=127.0.0.1:2181\nzk.zkAuth = metaq:" + secret + "\nzk.zkAuthFile=/etc/metaq/zk.auth\n",
		"ini-colon":     "[zookeeper]\nzk.zkAuth: metaq:" + secret + "\r\n",
		"yaml-nested":   "zookeeper:\n  zk:\n    zkConnect: 127.0.0.1:2181\n    zkAuth: \"metaq:" + secret + "\"\n",
		"toml":          "[zookeeper]\n\"zk.zkAuth\" = 'metaq:" + secret + "'\n",
		"json-minified": `{"system":{"brokerId":1,"serverPort": 8123, "x": 1,"adminToken":"` + secret + `"},"zookeeper":{"zk.zkConnect":"a:1","zk.zkAuth":"metaq:` + secret + `"}}`,
		"json-escaped":  `{"zookeeper":{"zk.zkAuth":"metaq:\"` + secret + `"}}`,
		"password-key":  "[security]\nbrokerPassword=" + secret + "\nbrokerPasswordFile=/etc/metaq/pw\n",
	} {
		t.Run(name, func(t *testing.T) {
			got := string(Redact([]byte(raw)))
			assert.NotContains(t, got, "s3cr3t", "secret leaked")
			assert.Contains(t, got, Redacted)
			for _, keep := range []string{"zkConnect", "127.0.0.1:2181", "/etc/metaq/"} {
				if strings.Contains(raw, keep) {
					assert.Contains(t, got, keep, "non-secret text must stay")
				}
			}
		})
	}
	plain := []byte("[system]\nbrokerId=1\n[zookeeper]\nzk.zkConnect=127.0.0.1:2181\n")
	assert.Equal(t, plain, Redact(plain), "a file without secrets is shown unchanged")
}

func TestIsSecretKey(t *testing.T) {
	for _, k := range []string{"zk.zkAuth", "brokerPassword", "adminToken", "client_secret", "ZK.ZKAUTH"} {
		assert.True(t, IsSecretKey(k), k)
	}
	for _, k := range []string{"zk.zkAuthFile", "usersFile", "adminTokenFile", "brokerPasswordFile", "zk.zkConnect", "allowAnonymous", "dataPath"} {
		assert.False(t, IsSecretKey(k), k)
	}
}
