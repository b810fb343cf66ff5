package main

import (
	"encoding/json"
	"io"
)

// writeJSON writes v as indented JSON, the shape of every -o json; "<",
// ">" and "&" stay as they are (a report is not HTML).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeFormatted writes a report as -o json (v itself), markdown or text
// (the default); markdown and text format it on demand.
func writeFormatted(w io.Writer, format string, v any, markdown, text func() string) error {
	switch format {
	case "json":
		return writeJSON(w, v)
	case "markdown":
		_, err := io.WriteString(w, markdown())
		return err
	}
	_, err := io.WriteString(w, text())
	return err
}
