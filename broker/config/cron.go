package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed Quartz cron expression, as MetaQ uses for deleteWhen:
//
//	seconds minutes hours day-of-month month day-of-week [year]
//
// Each field is "*", a number, a range "a-b" (wrapping when a > b, e.g. hours "22-2"), a
// stepped form "*/n", "a/n" or "a-b/n", or a comma-separated list of those. Months may be
// JAN..DEC and days of week SUN..SAT; days of week are 1..7 with 1 = Sunday (Quartz, not
// Unix). "?" (no specific value) is allowed in day-of-month and day-of-week; when one of
// them is restricted the other must be "?" or "*". Quartz's L, W, # and C are not
// supported. Years are 1970..2099.
//
// Schedule is a comparable value; its zero value never fires.
type Schedule struct {
	Text string // the expression as written

	seconds, minutes, hours, dom, months, dow uint64
	years                                     [3]uint64 // bit y-1970
	domAny, dowAny                            bool
}

const (
	minYear = 1970
	maxYear = 2099
)

type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is the value min+i
}

var cronFields = [7]cronField{
	{name: "seconds", max: 59},
	{name: "minutes", max: 59},
	{name: "hours", max: 23},
	{name: "day-of-month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: strings.Fields("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC")},
	{name: "day-of-week", min: 1, max: 7, names: strings.Fields("SUN MON TUE WED THU FRI SAT")},
	{name: "year", min: minYear, max: maxYear},
}

// ParseSchedule parses a Quartz cron expression with 6 or 7 fields.
func ParseSchedule(expr string) (Schedule, error) {
	fields := strings.Fields(expr)
	if len(fields) != 6 && len(fields) != 7 {
		return Schedule{}, fmt.Errorf("want 6 or 7 fields (sec min hour day-of-month month day-of-week [year]), got %d", len(fields))
	}
	if len(fields) == 6 {
		fields = append(fields, "*")
	}
	var sets [7][3]uint64
	var any [7]bool
	for i, f := range fields {
		set, isAny, err := cronFields[i].parse(f, i == 3 || i == 5)
		if err != nil {
			return Schedule{}, err
		}
		sets[i], any[i] = set, isAny
	}
	if !any[3] && !any[5] {
		return Schedule{}, fmt.Errorf("day-of-month and day-of-week are both restricted; set one of them to '?'")
	}
	return Schedule{
		Text:    strings.Join(strings.Fields(expr), " "),
		seconds: sets[0][0], minutes: sets[1][0], hours: sets[2][0], dom: sets[3][0],
		months: sets[4][0], dow: sets[5][0], years: sets[6],
		domAny: any[3], dowAny: any[5],
	}, nil
}

// String returns the expression.
func (s Schedule) String() string { return s.Text }

// parse returns the bit set of a field (bit v for a value v, bit v-1970 for years) and
// whether the field is unrestricted ("*" or "?").
func (f cronField) parse(s string, questionOK bool) (set [3]uint64, isAny bool, err error) {
	if s == "?" {
		if !questionOK {
			return set, false, fmt.Errorf("%s: '?' is only allowed in day-of-month and day-of-week", f.name)
		}
		s = "*"
	}
	if s == "*" {
		isAny = true
	}
	for _, item := range strings.Split(s, ",") {
		if err := f.item(item, &set); err != nil {
			return set, false, fmt.Errorf("%s: %q: %w", f.name, item, err)
		}
	}
	return set, isAny, nil
}

func (f cronField) item(item string, set *[3]uint64) error {
	rng, stepText, stepped := strings.Cut(item, "/")
	step := 1
	if stepped {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 || n > f.max-f.min+1 {
			return fmt.Errorf("step must be 1..%d", f.max-f.min+1)
		}
		step = n
	}
	lo, hi := f.min, f.max
	switch {
	case rng == "*":
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		var err error
		if lo, err = f.value(a); err != nil {
			return err
		}
		if hi, err = f.value(b); err != nil {
			return err
		}
	default:
		v, err := f.value(rng)
		if err != nil {
			return err
		}
		lo, hi = v, v
		if stepped { // "a/n" = from a to the end, every n
			hi = f.max
		}
	}
	width := f.max - f.min + 1
	span := (hi - lo + width) % width // wrapping range when lo > hi
	for i := 0; i <= span; i += step {
		v := f.min + (lo-f.min+i)%width
		bit := v
		if f.min == minYear {
			bit = v - minYear
		}
		set[bit/64] |= 1 << (bit % 64)
	}
	return nil
}

func (f cronField) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		if strings.ContainsAny(s, "LW#C") {
			return 0, fmt.Errorf("quartz L, W, # and C are not supported")
		}
		return 0, fmt.Errorf("want %d..%d", f.min, f.max)
	}
	return v, nil
}

func has(set uint64, v int) bool { return v >= 0 && v < 64 && set&(1<<v) != 0 }

func (s Schedule) yearOK(y int) bool {
	b := y - minYear
	return b >= 0 && y <= maxYear && s.years[b/64]&(1<<(b%64)) != 0
}

func (s Schedule) dayOK(t time.Time) bool {
	switch {
	case s.domAny && s.dowAny:
		return true
	case s.domAny:
		return has(s.dow, int(t.Weekday())+1) // Quartz: 1 = Sunday
	default:
		return has(s.dom, t.Day())
	}
}

// Next returns the first activation strictly after t, in t's location, or the zero
// Time when there is none before the end of year 2099 (or s is the zero Schedule).
func (s Schedule) Next(t time.Time) time.Time {
	if s.seconds == 0 || s.months == 0 {
		return time.Time{}
	}
	loc := t.Location()
	t = t.Truncate(time.Second).Add(time.Second)
	for range 1_000_000 {
		y, mo, d := t.Date()
		h, mi, sec := t.Clock()
		var next time.Time
		switch {
		case y > maxYear:
			return time.Time{}
		case !s.yearOK(y):
			next = time.Date(y+1, 1, 1, 0, 0, 0, 0, loc)
		case !has(s.months, int(mo)):
			next = time.Date(y, mo+1, 1, 0, 0, 0, 0, loc)
		case !s.dayOK(t):
			next = time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
		case !has(s.hours, h):
			next = time.Date(y, mo, d, h+1, 0, 0, 0, loc)
		case !has(s.minutes, mi):
			next = time.Date(y, mo, d, h, mi+1, 0, 0, loc)
		case !has(s.seconds, sec):
			next = t.Add(time.Second)
		default:
			return t
		}
		if !next.After(t) { // ambiguous wall clock after a DST fall-back
			next = t.Add(time.Second)
		}
		t = next
	}
	return time.Time{}
}
