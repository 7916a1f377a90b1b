package clusterview

import (
	"errors"
	"fmt"
	"strings"

	"github.com/metaq-go/metaq/broker/config"
)

// ParseBrokerConfig parses the body of a broker's `stats config` (its
// configuration file as written: INI, else YAML, TOML or JSON). Settings
// the broker took from METAQ_* environment variables are not in it.
func ParseBrokerConfig(raw []byte) (*config.Config, error) {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return nil, errors.New("the broker reports no configuration file")
	}
	var errs []error
	for _, format := range []string{"ini", "yaml", "toml", "json"} {
		cfg, err := config.Parse(raw, format, config.WithoutEnv())
		if err == nil {
			return cfg, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", format, err))
	}
	return nil, fmt.Errorf("the broker's configuration cannot be read: %w", errors.Join(errs...))
}

// Retention describes the retention of topic under cfg: its deletePolicy
// and, when set, the size limit per partition (retentionBytes).
func Retention(cfg *config.Config, topic string) string {
	t, ok := cfg.Topic(topic)
	if !ok {
		return ""
	}
	s := t.DeletePolicy.String()
	if t.RetentionBytes > 0 {
		s += fmt.Sprintf(", at most %d bytes per partition", t.RetentionBytes)
	}
	return s
}
