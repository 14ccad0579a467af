package channel

import "strings"

// containsAll reports whether text contains every word: messages.history
// {search} matches a message whose text holds all the query's words
// (lower-cased), in any order, each anywhere (a word may be part of a
// longer one). There is no index: see page for the scan budget.
func containsAll(text string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}
