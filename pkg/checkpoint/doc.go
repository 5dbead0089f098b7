// Package checkpoint owns what a checkpoint is on storage: the versioned
// manifest that makes a checkpoint complete, the naming of checkpoint
// objects, and the store they live in (subpackage store). The protocol that
// produces checkpoints — barriers, alignment, acknowledgements — is run by
// the checkpoint coordinator (package operator/coordinator) over the
// runtime in package operator.
package checkpoint
