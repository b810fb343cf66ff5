package render

import "testing"

// TestNamesGeneratingDateFunctions: the date functions are seen by their
// names, at the start of a word, and the stem check lets "update" (every
// updateStrategy) through without the regexp finding anything.
func TestNamesGeneratingDateFunctions(t *testing.T) {
	for text, want := range map[string]bool{
		`{{ date "2006" .Values.at }}`:                             true,
		`date "2006" .Values.at`:                                   true,
		`{{ dateInZone "2006" 0 "UTC" }}`:                          true,
		`{{ date_in_zone "2006" 0 "UTC" }}`:                        true,
		`{{ htmlDate .Values.at }}`:                                true,
		`{{ htmlDateInZone .Values.at "UTC" }}`:                    true,
		`{{ "2020-01-01" | toDate "2006-01-02" | durationRound }}`: true,
		`updateStrategy: {type: RollingUpdate}`:                    false,
		`candidate: validate, update, updated`:                     false,
		`{{ toDate "2006-01-02" "2020-01-01" | unixEpoch }}`:       false,
	} {
		if got := namesGenerating([]byte(text)); got != want {
			t.Errorf("namesGenerating(%q) = %v, want %v", text, got, want)
		}
	}
}
