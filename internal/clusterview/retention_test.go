package clusterview

import (
	"strings"
	"testing"
)

func TestRetentionFromABrokersConfigFile(t *testing.T) {
	ini := "[system]\nbrokerId=1\ndataPath=/tmp/x\ndeletePolicy=delete,72\n\n[zookeeper]\nzk.zkEnable=false\n\n" +
		"[topic=orders]\ndeletePolicy=delete,24h\nretentionBytes=1048576\n\n[topic=audit]\n"
	cfg, err := ParseBrokerConfig([]byte(ini))
	if err != nil {
		t.Fatal(err)
	}
	if got := Retention(cfg, "orders"); got != "delete,24h, at most 1048576 bytes per partition" {
		t.Errorf("orders: %q", got)
	}
	if got := Retention(cfg, "audit"); got != "delete,72" {
		t.Errorf("audit (the [system] default): %q", got)
	}
	if _, err := ParseBrokerConfig(nil); err == nil || !strings.Contains(err.Error(), "no configuration file") {
		t.Errorf("empty config: %v", err)
	}
}
