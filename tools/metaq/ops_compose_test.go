package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/metaq-go/metaq/broker/config"
)

// composeFile is the part of docker/compose.yaml the topology test reads.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       map[string]string `yaml:"build"`
	User        string            `yaml:"user"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docker", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker/compose.yaml: %v", err)
	}
	return c
}

// TestComposeTopology checks docker/compose.yaml without a container engine:
// 3 ZooKeeper servers with distinct ids and one consistent ZOO_SERVERS, 3
// brokers with distinct ids, health checks and volumes, on a non-root image.
func TestComposeTopology(t *testing.T) {
	c := readCompose(t)
	var zks, brokers []string
	for name := range c.Services {
		switch {
		case strings.HasPrefix(name, "zk"):
			zks = append(zks, name)
		case strings.HasPrefix(name, "broker"):
			brokers = append(brokers, name)
		case name == "dashboard":
			checkDashboardCommand(t, c.Services[name].Command)
		default:
			t.Errorf("unexpected service %q", name)
		}
	}
	slices.Sort(zks)
	slices.Sort(brokers)
	if len(zks) != 3 || len(brokers) != 3 {
		t.Fatalf("want 3 zk and 3 brokers, got %v %v", zks, brokers)
	}

	serversRE := regexp.MustCompile(`^server\.(\d+)=([a-z0-9]+):2888:3888;2181$`)
	ids := map[string]bool{}
	var zkServers string
	for _, name := range zks {
		s := c.Services[name]
		if !strings.HasPrefix(s.Image, "zookeeper:") {
			t.Errorf("%s: image %q, want the official zookeeper image", name, s.Image)
		}
		id := s.Environment["ZOO_MY_ID"]
		if id == "" || ids[id] {
			t.Errorf("%s: ZOO_MY_ID %q missing or duplicated", name, id)
		}
		ids[id] = true
		if zkServers == "" {
			zkServers = s.Environment["ZOO_SERVERS"]
		} else if s.Environment["ZOO_SERVERS"] != zkServers {
			t.Errorf("%s: ZOO_SERVERS differs from the other servers'", name)
		}
		// Each server's own entry names it with its own id.
		if !strings.Contains(zkServers, "server."+id+"="+name+":") {
			t.Errorf("%s (id %s) is not in ZOO_SERVERS %q", name, id, zkServers)
		}
		checkHealthAndVolume(t, name, s, "/data")
	}
	entries := strings.Fields(zkServers)
	if len(entries) != 3 {
		t.Errorf("ZOO_SERVERS has %d entries, want 3: %q", len(entries), zkServers)
	}
	for _, e := range entries {
		m := serversRE.FindStringSubmatch(e)
		if m == nil || !ids[m[1]] || c.Services[m[2]].Environment["ZOO_MY_ID"] != m[1] {
			t.Errorf("ZOO_SERVERS entry %q does not match a zk service and its ZOO_MY_ID", e)
		}
	}

	brokerIDs := map[string]bool{}
	for _, name := range brokers {
		s := c.Services[name]
		env := s.Environment
		id := env["METAQ_SYSTEM_BROKERID"]
		if id == "" || brokerIDs[id] {
			t.Errorf("%s: METAQ_SYSTEM_BROKERID %q missing or duplicated", name, id)
		}
		brokerIDs[id] = true
		if env["METAQ_SYSTEM_HOSTNAME"] != name {
			t.Errorf("%s: METAQ_SYSTEM_HOSTNAME %q, want the service name (what others resolve)", name, env["METAQ_SYSTEM_HOSTNAME"])
		}
		for _, zk := range zks {
			if !strings.Contains(env["METAQ_ZOOKEEPER_ZKCONNECT"], zk+":2181") {
				t.Errorf("%s: METAQ_ZOOKEEPER_ZKCONNECT %q lacks %s", name, env["METAQ_ZOOKEEPER_ZKCONNECT"], zk)
			}
			if s.DependsOn[zk].Condition != "service_healthy" {
				t.Errorf("%s: should wait for %s to be healthy", name, zk)
			}
		}
		if s.User == "" || strings.HasPrefix(s.User, "0") || s.User == "root" {
			t.Errorf("%s: user %q, want a non-root uid", name, s.User)
		}
		if s.Build["dockerfile"] != "docker/Dockerfile" {
			t.Errorf("%s: build %v", name, s.Build)
		}
		want := []string{"CMD", "metaq", "healthcheck", "--broker", "localhost:8123"}
		if len(s.Healthcheck.Test) < len(want) || !slices.Equal(s.Healthcheck.Test[:len(want)], want) {
			t.Errorf("%s: healthcheck %v, want %v...", name, s.Healthcheck.Test, want)
		}
		checkHealthAndVolume(t, name, s, env["METAQ_SYSTEM_DATAPATH"])
		checkAdminPublishedOnLoopback(t, name, s)
		checkBrokerCommand(t, name, s.Command)
	}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			vol, _, _ := strings.Cut(v, ":")
			if _, ok := c.Volumes[vol]; !ok {
				t.Errorf("%s: volume %q is not declared at the top level", name, vol)
			}
		}
	}
}

func checkHealthAndVolume(t *testing.T, name string, s composeService, dataDir string) {
	t.Helper()
	if len(s.Healthcheck.Test) == 0 {
		t.Errorf("%s: no healthcheck", name)
	}
	if dataDir == "" || !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+dataDir) }) {
		t.Errorf("%s: no volume mounted on its data directory %q: %v", name, dataDir, s.Volumes)
	}
}

// checkAdminPublishedOnLoopback: the admin port listens on every interface
// inside the container (adminHost=0.0.0.0) and is published on the host's
// loopback only.
func checkAdminPublishedOnLoopback(t *testing.T, name string, s composeService) {
	t.Helper()
	port := s.Environment["METAQ_SYSTEM_ADMINPORT"]
	if port == "" || s.Environment["METAQ_SYSTEM_ADMINHOST"] != "0.0.0.0" {
		t.Errorf("%s: want METAQ_SYSTEM_ADMINPORT set and METAQ_SYSTEM_ADMINHOST=0.0.0.0 (reachable through the published port)", name)
	}
	published := false
	for _, p := range s.Ports {
		if strings.HasSuffix(p, ":"+port) {
			published = true
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: admin port published as %q: publish it on the host's loopback (127.0.0.1:<host port>:%s)", name, p, port)
			}
		}
	}
	if !published {
		t.Errorf("%s: admin port %s not published: %v", name, port, s.Ports)
	}
}

// checkDashboardCommand parses the dashboard service's command with the real
// CLI: `metaq dashboard` on the ensemble, listening beyond the container's loopback.
func checkDashboardCommand(t *testing.T, args []string) {
	t.Helper()
	cmd, rest, err := newRootCmd().Find(args)
	if err != nil || cmd.Name() != "dashboard" {
		t.Fatalf("dashboard: command %v is not `metaq dashboard`: %v", args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("dashboard: command %v: %v", args, err)
	}
	zk, _ := cmd.Flags().GetString("zk")
	listen, _ := cmd.Flags().GetString("listen")
	if zk != "zk1:2181,zk2:2181,zk3:2181" || !strings.HasPrefix(listen, "0.0.0.0:") {
		t.Errorf("dashboard: --zk %q --listen %q, want the ensemble and 0.0.0.0:<port>", zk, listen)
	}
}

// checkBrokerCommand parses the service's command with the real CLI.
func checkBrokerCommand(t *testing.T, name string, args []string) {
	t.Helper()
	cmd, rest, err := newRootCmd().Find(args)
	if err != nil || cmd.Name() != "broker" {
		t.Fatalf("%s: command %v is not `metaq broker`: %v", name, args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: command %v: %v", name, args, err)
	}
	if cfg, _ := cmd.Flags().GetString("config"); cfg != "/etc/metaq/server.ini" {
		t.Errorf("%s: --config %q, want the image's /etc/metaq/server.ini", name, cfg)
	}
}

// TestComposeBrokerEnvOverServerINI loads conf/server.ini (what the image
// ships) with one broker's environment from compose.yaml.
func TestComposeBrokerEnvOverServerINI(t *testing.T) {
	s := readCompose(t).Services["broker2"]
	for k, v := range s.Environment {
		t.Setenv(k, v)
	}
	cfg, err := config.Load(filepath.Join("..", "..", "conf", "server.ini"))
	if err != nil {
		t.Fatal(err)
	}
	b, z := cfg.Broker(), cfg.ZooKeeper()
	if b.BrokerID != 2 || b.HostName != "broker2" || b.ServerPort != 8123 || b.DataPath != "/var/lib/metaq" {
		t.Errorf("broker settings: %+v", b)
	}
	if !z.Enable || z.Connect != "zk1:2181,zk2:2181,zk3:2181" || z.Root != "/meta" {
		t.Errorf("zookeeper settings: %+v", z)
	}
}

// TestDockerfileRunsAsNonRoot checks the image: a static build, a minimal
// base, a non-root user and the broker health check.
func TestDockerfileRunsAsNonRoot(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{"CGO_ENABLED=0", "./tools/metaq", "COPY conf/server.ini /etc/metaq/server.ini",
		`"healthcheck", "--broker", "localhost:8123"`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	var froms []string
	var user string
	for line := range strings.Lines(df) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "FROM" {
			froms = append(froms, f[1])
		}
		if len(f) >= 2 && f[0] == "USER" {
			user = f[1]
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %v", froms)
	}
	final := froms[len(froms)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage %q: want distroless/static or scratch", final)
	}
	uid, _, _ := strings.Cut(user, ":")
	if user == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: the image must run as non-root", user)
	}
}
