package config

import (
	"os"
	"testing"
)

func FuzzParseINI(f *testing.F) {
	for _, p := range []string{"testdata/metaq_server.ini", "../../conf/server.ini"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimalINI))
	f.Add([]byte("[topic=*]\nx:y=z\n[a]b]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = parseINI("fuzz.ini", data)
		_, _ = Parse(data, "ini", WithoutEnv()) // full pipeline: must not panic either
	})
}

func FuzzScheduleAndValues(f *testing.F) {
	f.Add("0 0 6,18 * * ?")
	f.Add("*/7 5-2/3 22-2 ? JAN-DEC/2 SUN-SAT 2024-2030/2")
	f.Add("1024*(1024+-3)/0")
	f.Fuzz(func(t *testing.T, s string) {
		if sch, err := ParseSchedule(s); err == nil {
			_ = sch.Next(at("2024-01-01 00:00:00"))
		}
		_, _ = evalInt(s)
		_, _ = ParseDeletePolicy(s)
	})
}
