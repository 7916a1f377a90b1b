package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/broker/store"
)

func newSegmentsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "segments",
		Short: "offline checks of partition segment files (run on a stopped broker or a copy)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("segments: missing subcommand: use `metaq segments verify DIR` or `metaq segments dump DIR|FILE`")}
		},
	}
	cmd.AddCommand(newSegmentsVerifyCmd(g), newSegmentsDumpCmd(g))
	return cmd
}

// segmentResult is one segment in `metaq segments verify`.
type segmentResult struct {
	Partition string `json:"partition"`
	File      string `json:"file"`
	Start     int64  `json:"start"`
	Size      int64  `json:"size"`
	Valid     int64  `json:"valid"`
	Messages  int64  `json:"messages"`
	Status    string `json:"status"` // ok, torn tail, corrupt, error
	Problem   string `json:"problem,omitempty"`
}

type verifyResult struct {
	Dir      string          `json:"dir"`
	Dirs     []string        `json:"dirs,omitempty"` // with --config: every data directory verified
	OK       bool            `json:"ok"`
	Segments []segmentResult `json:"segments"`
	Errors   []string        `json:"errors,omitempty"`
	// PendingCommitLogs are commit logs (broker/store doc.go) left by an
	// unclean stop: the broker's next start writes them back into the
	// segments first, so a torn tail reported here may not be lost.
	PendingCommitLogs []string `json:"pending_commit_logs,omitempty"`
}

func newSegmentsVerifyCmd(g *globals) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "verify DIR | --config FILE",
		Short: "check every message's CRC in a partition directory, a data directory, or every data directory of a broker config (exit 3 on corruption)",
		Long: `Verify reads every segment of a partition directory (<dataPath>/<topic>-<n>)
or of every partition under a data directory and checks each message's
checksum and that segments are contiguous. With --config it reads the
broker's configuration file instead and verifies every partition under
[system] dataPath and under each per-topic dataPath ([topic=...] dataPath=).
It exits 3 naming the file and offset when it finds corruption. A torn tail
of the last segment (left by an unclean shutdown, truncated by the next
start) is reported but is not an error. Commit logs left by an unclean stop
(commit-*.log in a data directory) are named: the next start writes them
into the segments before it truncates anything.`,
		Example: "  metaq segments verify /var/lib/metaq\n  metaq segments verify --config conf/server.ini\n" +
			"  metaq segments verify /var/lib/metaq/orders-0 -o json",
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var dirs []string
			var err error
			switch {
			case configPath != "" && len(args) > 0:
				return usageError{errors.New("segments verify: give either DIR or --config, not both")}
			case configPath != "":
				dirs, err = configDataDirs(configPath)
			case len(args) == 0:
				return usageError{errors.New("segments verify: give a data or partition directory, or --config with the broker's configuration file")}
			default:
				dirs = args
			}
			if err != nil {
				return err
			}
			res, err := verifyDirs(dirs, configPath != "")
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.output() == "json" {
				if err := printJSON(w, res); err != nil {
					return err
				}
			} else if err := printVerify(w, res); err != nil {
				return err
			}
			if !res.OK {
				return checkError{fmt.Errorf("corruption found in %s:\n  %s", res.Dir, strings.Join(res.Errors, "\n  "))}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "broker configuration file: verify [system] dataPath and every per-topic dataPath")
	return cmd
}

// loadDataConfig loads a broker configuration file for the offline commands.
func loadDataConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("segments: %w", err)
	}
	return cfg, nil
}

// configDataDirs lists a broker's data directories: [system] dataPath, then
// each per-topic dataPath.
func configDataDirs(path string) ([]string, error) {
	cfg, err := loadDataConfig(path)
	if err != nil {
		return nil, err
	}
	return append([]string{cfg.Broker().DataPath}, cfg.TopicDataPaths()...), nil
}

// partitionDirs returns dir itself when it holds segments, else its
// subdirectories named <topic>-<n>.
func partitionDirs(dir string) ([]string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: give a partition directory (<dataPath>/<topic>-<n>) or a data directory", err)
	}
	if !fi.IsDir() {
		return nil, usageError{fmt.Errorf("%s is a file: verify takes a directory (use `metaq segments dump FILE` for one segment)", dir)}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var parts []string
	for _, e := range ents {
		if !e.IsDir() && isSegmentName(e.Name()) {
			return []string{dir}, nil
		}
		if _, _, ok := store.ParsePartitionDirName(e.Name()); ok && e.IsDir() {
			parts = append(parts, filepath.Join(dir, e.Name()))
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%s has no segment files (*.meta) and no partition directories (<topic>-<n>): is it the broker's dataPath?", dir)
	}
	sort.Strings(parts)
	return parts, nil
}

// verifyDirs verifies the partitions of each directory. With lenient, a
// directory that does not exist or holds no partition is skipped (a
// per-topic dataPath before its topic's first put); at least one partition
// must be found somewhere.
func verifyDirs(dirs []string, lenient bool) (verifyResult, error) {
	var parts []string
	for _, dir := range dirs {
		ps, err := partitionDirs(dir)
		if err != nil && !(lenient && isNothingThere(dir)) {
			return verifyResult{}, err
		}
		parts = append(parts, ps...)
	}
	if len(parts) == 0 {
		return verifyResult{}, fmt.Errorf("no partition directories (<topic>-<n>) in %s: is the config the broker's?", strings.Join(dirs, ", "))
	}
	res := verifyResult{Dir: strings.Join(dirs, ", "), OK: true, Segments: []segmentResult{}}
	if len(dirs) > 1 {
		res.Dirs = dirs
	}
	for _, pd := range parts {
		verifyPartition(&res, pd)
	}
	for _, dir := range dirs {
		logs, _ := filepath.Glob(filepath.Join(dir, "commit-*.log"))
		res.PendingCommitLogs = append(res.PendingCommitLogs, logs...)
	}
	return res, nil
}

// isNothingThere reports whether dir is missing or holds no partition directory.
func isNothingThere(dir string) bool {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	for _, e := range ents {
		if _, _, ok := store.ParsePartitionDirName(e.Name()); ok && e.IsDir() || isSegmentName(e.Name()) {
			return false
		}
	}
	return err == nil
}

func verifyPartition(res *verifyResult, pd string) {
	rep, verr := store.Verify(nil, pd)
	if verr != nil {
		res.OK = false
		for _, e := range unjoin(verr) {
			res.Errors = append(res.Errors, e.Error())
		}
	}
	for i, sr := range rep.Segments {
		r := segmentResult{Partition: filepath.Base(pd), File: sr.Path, Start: sr.Start, Size: sr.Size,
			Valid: sr.Valid, Messages: sr.Messages, Status: "ok"}
		switch {
		case sr.Err == nil:
		case errors.Is(sr.Err, store.ErrIncomplete) && i == len(rep.Segments)-1:
			r.Status = "torn tail"
			r.Problem = fmt.Sprintf("incomplete message at offset %d (%d bytes; truncated at the next start)", sr.Start+sr.Valid, sr.Size-sr.Valid)
		case errors.Is(sr.Err, store.ErrCorrupt), errors.Is(sr.Err, store.ErrIncomplete):
			r.Status = "corrupt"
			r.Problem = fmt.Sprintf("offset %d: %v", sr.Start+sr.Valid, sr.Err)
		default:
			r.Status = "error"
			r.Problem = sr.Err.Error()
		}
		res.Segments = append(res.Segments, r)
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func printVerify(w io.Writer, res verifyResult) error {
	rows := make([][]string, 0, len(res.Segments))
	for _, s := range res.Segments {
		rows = append(rows, []string{s.Partition, filepath.Base(s.File), strconv.FormatInt(s.Messages, 10),
			strconv.FormatInt(s.Size, 10), strconv.FormatInt(s.Valid, 10), s.Status, orDash(s.Problem)})
	}
	if err := printTable(w, []string{"PARTITION", "SEGMENT", "MESSAGES", "SIZE", "VALID", "STATUS", "PROBLEM"}, rows); err != nil {
		return err
	}
	if res.OK {
		fmt.Fprintf(w, "\nok: %d segments, no corruption\n", len(res.Segments))
	}
	if len(res.PendingCommitLogs) > 0 {
		fmt.Fprintf(w, "\nnote: %d commit log file(s) not yet replayed (%s): the broker's next start writes them into the segments first, so a torn tail above may be restored, not truncated\n",
			len(res.PendingCommitLogs), strings.Join(res.PendingCommitLogs, ", "))
	}
	return nil
}

// isSegmentName reports whether name is <20 digits>.meta.
func isSegmentName(name string) bool {
	_, ok := segmentStart(name)
	return ok
}

// segmentStart parses the start offset from a segment file name (store/names.go: %020d.meta).
func segmentStart(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, ".meta")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	return v, err == nil && v >= 0
}

// dumpedMessage is one message in `metaq segments dump`.
type dumpedMessage struct {
	File    string `json:"file"`
	Offset  int64  `json:"offset"`
	ID      int64  `json:"id"`
	Time    string `json:"time"` // from the snowflake id
	Flag    int32  `json:"flag"`
	Size    int32  `json:"size"` // put data length
	CRCOK   bool   `json:"crc_ok"`
	Payload string `json:"payload,omitempty"`
}

func newSegmentsDumpCmd(g *globals) *cobra.Command {
	var limit, payload int
	var configPath string
	cmd := &cobra.Command{
		Use:   "dump DIR|FILE | --config FILE TOPIC-N",
		Short: "list the messages of a segment file or a partition directory: offset, id, flag, size, crc ok (exit 3 on a bad crc)",
		Example: "  metaq segments dump /var/lib/metaq/orders-0\n" +
			"  metaq segments dump --config conf/server.ini orders-0   # found under the topic's dataPath\n" +
			"  metaq segments dump /var/lib/metaq/orders-0/00000000000000000000.meta --limit 10 --payload 32",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if configPath != "" {
				var err error
				if path, err = configPartitionDir(configPath, path); err != nil {
					return err
				}
			}
			files, err := segmentFiles(path)
			if err != nil {
				return err
			}
			d := newDumper(cmd.OutOrStdout(), g.output() == "json", limit, payload)
			for _, f := range files {
				if err := d.dumpFile(f); err != nil {
					return err
				}
				if d.full() {
					break
				}
			}
			if err := d.finish(); err != nil {
				return err
			}
			if len(d.problems) > 0 {
				return checkError{fmt.Errorf("%d problem(s):\n  %s", len(d.problems), strings.Join(d.problems, "\n  "))}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after this many messages (0 = all)")
	cmd.Flags().IntVar(&payload, "payload", 0, "show up to this many bytes of each message's put data (quoted)")
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "broker configuration file: the argument is a partition (<topic>-<n>) found under its topic's dataPath")
	return cmd
}

// configPartitionDir resolves a partition name (<topic>-<n>) to its
// directory under the topic's dataPath in a broker configuration.
func configPartitionDir(configPath, name string) (string, error) {
	topic, _, ok := store.ParsePartitionDirName(name)
	if !ok {
		return "", usageError{fmt.Errorf("segments dump --config: %q is not a partition name: want <topic>-<n>, e.g. orders-0", name)}
	}
	cfg, err := loadDataConfig(configPath)
	if err != nil {
		return "", err
	}
	dir := cfg.Broker().DataPath
	if tc, ok := cfg.Topic(topic); ok && tc.DataPath != "" {
		dir = tc.DataPath
	}
	return filepath.Join(dir, name), nil
}

// segmentFiles returns the file itself, or a partition directory's segments in order.
func segmentFiles(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("%w: give a segment file (<start>.meta) or a partition directory", err)
	}
	if !fi.IsDir() {
		if !isSegmentName(filepath.Base(p)) {
			return nil, usageError{fmt.Errorf("%s is not a segment file: want a name like 00000000000000000000.meta", p)}
		}
		return []string{p}, nil
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() && isSegmentName(e.Name()) {
			files = append(files, filepath.Join(p, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s has no segment files (*.meta): give a partition directory such as <dataPath>/<topic>-0", p)
	}
	sort.Strings(files) // zero-padded names sort by offset
	return files, nil
}

// dumper streams messages as fixed-width table rows or a JSON array, so a
// 1 GiB segment never sits in memory.
type dumper struct {
	w        *bufio.Writer
	json     bool
	limit    int
	payload  int
	n        int
	problems []string
}

func newDumper(w io.Writer, asJSON bool, limit, payload int) *dumper {
	return &dumper{w: bufio.NewWriter(w), json: asJSON, limit: limit, payload: payload}
}

func (d *dumper) full() bool { return d.limit > 0 && d.n >= d.limit }

const dumpRowFormat = "%-20s  %-20s  %-30s  %-6s  %-10s  %s"

func (d *dumper) add(m dumpedMessage) {
	first := d.n == 0
	d.n++
	if d.json {
		if first {
			d.w.WriteString("[\n")
		} else {
			d.w.WriteString(",\n")
		}
		b, _ := json.Marshal(m)
		d.w.WriteString("  ")
		d.w.Write(b)
		return
	}
	if first {
		d.row("OFFSET", "ID", "TIME", "FLAG", "SIZE", "CRC_OK", "PAYLOAD")
	}
	d.row(strconv.FormatInt(m.Offset, 10), strconv.FormatInt(m.ID, 10), m.Time, strconv.Itoa(int(m.Flag)),
		strconv.Itoa(int(m.Size)), yesNo(m.CRCOK), strconv.Quote(m.Payload))
}

func (d *dumper) row(offset, id, tm, flag, size, crc, payload string) {
	fmt.Fprintf(d.w, dumpRowFormat, offset, id, tm, flag, size, crc)
	if d.payload > 0 {
		fmt.Fprintf(d.w, "  %s", payload)
	}
	d.w.WriteString("\n")
}

func (d *dumper) finish() error {
	switch {
	case d.json && d.n == 0:
		d.w.WriteString("[]\n")
	case d.json:
		d.w.WriteString("\n]\n")
	case d.n == 0:
		d.w.WriteString("no messages\n")
	}
	return d.w.Flush()
}

// dumpFile reads one segment message by message without loading it whole.
func (d *dumper) dumpFile(path string) error {
	start, _ := segmentStart(filepath.Base(path))
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [store.HeaderSize]byte
	var data []byte
	for pos := int64(0); !d.full(); {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				d.problems = append(d.problems, fmt.Sprintf("%s at offset %d: incomplete header (%d bytes left): torn tail",
					path, start+pos, fi.Size()-pos))
				return nil
			}
			return err
		}
		h := store.ParseHeader(hdr[:])
		if left := fi.Size() - pos - store.HeaderSize; h.Len < 0 || int64(h.Len) > left {
			d.problems = append(d.problems, fmt.Sprintf("%s at offset %d: message length %d but %d bytes left: corrupt or torn",
				path, start+pos, h.Len, left))
			return nil
		}
		if cap(data) < int(h.Len) {
			data = make([]byte, h.Len)
		}
		data = data[:h.Len]
		if _, err := io.ReadFull(r, data); err != nil {
			return err
		}
		m := dumpedMessage{File: path, Offset: start + pos, ID: h.ID,
			Time: store.IDTime(h.ID).UTC().Format(time.RFC3339Nano),
			Flag: h.Flag, Size: h.Len, CRCOK: store.Checksum(data) == h.Checksum}
		if d.payload > 0 {
			m.Payload = string(data[:min(len(data), d.payload)])
		}
		if !m.CRCOK {
			d.problems = append(d.problems, fmt.Sprintf("%s at offset %d: checksum mismatch (message id %d)", path, m.Offset, m.ID))
		}
		d.add(m)
		pos += store.HeaderSize + int64(h.Len)
	}
	return nil
}
