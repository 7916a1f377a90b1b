package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestScheduleNext(t *testing.T) {
	tests := []struct {
		scenario, expr, from, want string
	}{
		{"MetaQ default, morning run", "0 0 6,18 * * ?", "2024-03-10 05:59:59", "2024-03-10 06:00:00"},
		{"MetaQ default, strictly after", "0 0 6,18 * * ?", "2024-03-10 06:00:00", "2024-03-10 18:00:00"},
		{"MetaQ default, rolls to next day", "0 0 6,18 * * ?", "2024-03-10 18:00:01", "2024-03-11 06:00:00"},
		{"MetaQ default, rolls over the year", "0 0 6,18 * * ?", "2024-12-31 23:00:00", "2025-01-01 06:00:00"},
		{"every 15 minutes", "0 */15 * * * ?", "2024-01-01 10:07:30", "2024-01-01 10:15:00"},
		{"start/step seconds", "5/20 * * * * ?", "2024-01-01 10:00:06", "2024-01-01 10:00:25"},
		{"weekday names: next Monday", "0 30 2 ? * MON", "2024-03-13 00:00:00", "2024-03-18 02:30:00"},
		{"day of week 1 is Sunday", "0 0 0 ? * 1", "2024-03-13 00:00:00", "2024-03-17 00:00:00"},
		{"day-of-week range MON-FRI skips the weekend", "0 0 9 ? * MON-FRI", "2024-03-15 10:00:00", "2024-03-18 09:00:00"},
		{"wrapping hour range", "0 0 22-2 * * ?", "2024-03-10 03:00:00", "2024-03-10 22:00:00"},
		{"leap day", "0 0 0 29 2 ?", "2023-03-01 00:00:00", "2024-02-29 00:00:00"},
		{"31st skips short months", "0 0 12 31 * ?", "2024-04-01 00:00:00", "2024-05-31 12:00:00"},
		{"month names", "0 0 0 1 JAN,JUL ?", "2024-02-01 00:00:00", "2024-07-01 00:00:00"},
		{"year field", "0 0 0 1 1 ? 2030", "2024-02-01 00:00:00", "2030-01-01 00:00:00"},
		{"sub-second input", "* * * * * ?", "2024-01-01 00:00:00", "2024-01-01 00:00:01"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			s, err := ParseSchedule(tt.expr)
			require.NoError(t, err)
			assert.Equal(t, at(tt.want), s.Next(at(tt.from)))
		})
	}
}

func TestScheduleNever(t *testing.T) {
	s, err := ParseSchedule("0 0 0 30 2 ?")
	require.NoError(t, err)
	assert.True(t, s.Next(at("2024-01-01 00:00:00")).IsZero(), "February 30th never comes")
	past, err := ParseSchedule("0 0 0 1 1 ? 2000")
	require.NoError(t, err)
	assert.True(t, past.Next(at("2024-01-01 00:00:00")).IsZero())
	assert.True(t, Schedule{}.Next(time.Now()).IsZero())
}

func TestScheduleKeepsLocation(t *testing.T) {
	loc := time.FixedZone("UTC+8", 8*3600)
	s, err := ParseSchedule(DefaultDeleteWhen)
	require.NoError(t, err)
	got := s.Next(time.Date(2024, 3, 10, 7, 0, 0, 0, loc))
	assert.Equal(t, time.Date(2024, 3, 10, 18, 0, 0, 0, loc), got)
}

func TestScheduleParseErrors(t *testing.T) {
	for _, expr := range []string{
		"", "0 0 6", "0 0 6 * * ? 2024 x", "60 * * * * ?", "* * * 0 * ?", "* * * * 13 ?",
		"* * * * * 8", "* * * 1 * MON", "? * * * * *", "* * * L * ?", "* * * 15W * ?",
		"* * * ? * 6#3", "*/0 * * * * ?", "1-2-3 * * * * ?", "a * * * * ?", "* * * * * ? 1969",
	} {
		_, err := ParseSchedule(expr)
		assert.Error(t, err, "%q", expr)
	}
}

func TestDeletePolicy(t *testing.T) {
	tests := []struct {
		in   string
		want DeletePolicy
	}{
		{"delete,168", DeletePolicy{Action: PolicyDelete, MaxAge: 168 * time.Hour}},
		{"delete,10s", DeletePolicy{Action: PolicyDelete, MaxAge: 10 * time.Second}},
		{"delete,10m", DeletePolicy{Action: PolicyDelete, MaxAge: 10 * time.Minute}},
		{"delete, 12h", DeletePolicy{Action: PolicyDelete, MaxAge: 12 * time.Hour}},
		{"archive,24", DeletePolicy{Action: PolicyArchive, MaxAge: 24 * time.Hour}},
		{"archive,24h,true", DeletePolicy{Action: PolicyArchive, MaxAge: 24 * time.Hour, Compress: true}},
		{"archive,30m,false", DeletePolicy{Action: PolicyArchive, MaxAge: 30 * time.Minute}},
	}
	for _, tt := range tests {
		got, err := ParseDeletePolicy(tt.in)
		require.NoError(t, err, tt.in)
		tt.want.Text = tt.in
		assert.Equal(t, tt.want, got, tt.in)
	}
	for _, bad := range []string{"", "delete", "delete,", "delete,0", "delete,-1", "delete,10d",
		"delete,1,true", "archive,1,maybe", "purge,1", "archive,1,true,x", "delete,99999999999999999h"} {
		_, err := ParseDeletePolicy(bad)
		assert.Error(t, err, "%q", bad)
	}
}
