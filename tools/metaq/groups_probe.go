package main

import (
	"strconv"
)

// formatOffset prints an offset, "-" when unknown (negative).
func formatOffset(v int64) string {
	if v < 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}
