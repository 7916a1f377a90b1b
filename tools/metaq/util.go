package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printList is the output of a list command: rows as JSON with -o json,
// else the sentence empty when there are none, else table(rows).
func printList[R any](w io.Writer, g *globals, rows []R, empty string, table func(io.Writer, []R) error) error {
	if g.output() == "json" {
		return printJSON(w, rows)
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, empty)
		return err
	}
	return table(w, rows)
}

// printTable writes rows under a header, aligned.
func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, h := range header {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, h)
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		for i, c := range r {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
