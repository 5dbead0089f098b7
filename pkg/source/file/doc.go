// Package file reads JSON lines (one message per line) from files or stdin.
//
// Every file is a split whose ID is its path as configured, after glob
// expansion; stdin is the split "stdin". A message's Position.Offset is the
// byte offset where its line starts, so opening a split at a position seeks
// to that line. The position of the next line to read, which is what a
// checkpoint stores, is Reader.Position(); for an ordinary line it is also
// Offset + len(Value) + 1, because lines are delivered exactly as written,
// minus only the newline (a CR before it is kept; JSON parsers treat it as
// whitespace). Empty lines are skipped.
//
// Read-once mode ends each split with source.ErrEndOfSplit at end of file,
// delivering a last line that lacks its newline. Follow mode behaves like
// tail -F: it polls for growth every PollInterval; it treats a final line
// without newline as still being written and waits for the rest; it restarts
// from offset 0 when the file shrinks below the read position (truncation,
// copytruncate rotation); and when the path names a different file than the
// one open (rename rotation) it reads the old file to its end and then
// continues with the new file from offset 0. A followed path that does not
// exist yet is waited for.
//
// Lines longer than MaxLine are not held in memory whole: the first MaxLine
// bytes are delivered as one message (which the decoder rejects, sending it
// to dead letters) and the rest of the line is skipped.
//
// Readers reuse one buffer; message values point into it and are valid
// until the next Read, so reading costs no allocation per line.
package file
