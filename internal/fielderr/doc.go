// Package fielderr carries configuration problems that name the setting
// they concern, so a connector's Validate can report every problem with a
// path ("sasl.mechanism") that the pipeline loader turns into a YAML path
// and a line, and so misspelt values get a suggestion.
package fielderr
