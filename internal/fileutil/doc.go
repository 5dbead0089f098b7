// Package fileutil holds the durable file writes that checkpoints and
// sinks rely on: a file's bytes fsynced before it is used, a directory
// fsynced after an entry in it is created, renamed or linked, and a file
// replaced atomically. Written once, so every durable write follows the
// same order of syncs.
package fileutil
