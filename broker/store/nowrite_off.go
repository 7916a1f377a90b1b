//go:build !metaq_nowrite

package store

// benchNoWrite is set only in binaries built with the metaq_nowrite tag
// (nowrite_on.go): see there. Normal builds compile its branches out.
const benchNoWrite = false
