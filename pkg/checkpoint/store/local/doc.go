// Package local implements store.Store on a directory of the local file
// system, the embedded default for checkpoints when no object store is
// configured.
//
// Every write is durable when it returns: data goes to a temporary file that
// is fsynced, then renamed (Put) or hard-linked (PutIfAbsent, CompleteUpload,
// which must never replace an object) into place, and the directories are
// fsynced. Multipart uploads are emulated with a directory of part files
// that CompleteUpload concatenates. Bookkeeping lives in the reserved
// ".store" directory below the root, which List never shows.
package local
