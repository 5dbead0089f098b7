// Package coordinator runs streamd's aligned checkpoints over the
// dataflow runtime (package operator). It triggers a checkpoint by
// injecting a barrier, collects the split positions (AtSplit) and subtask
// snapshots (AtSubtask) as the barrier passes, fails a checkpoint that
// does not complete in time, writes the state blobs and then the manifest
// (package checkpoint), which makes the checkpoint complete, then commits
// the sinks' output and the sources' offsets and drops checkpoints beyond
// the retained ones. At start it restores a retained checkpoint: split
// positions, state by stage and key group, and the sinks' states.
//
// The coordinator sees the runtime only through the Runtime interface:
// inject a barrier, the stages and the number of subtasks that
// acknowledge it, the sinks and sources, the key-group count, whether the
// pipeline failed, outages of the sinks and the store, the parts of tasks
// that ended, and where a restore hands its state. The runtime implements
// it (and imports this package); the tests here implement it with no task
// at all. A subtask's state is seen through the keyed-operator contract
// (package keyed) only.
//
// Barriers are markers, which the runtime also uses for broadcast rule
// updates. The marker types (Marker, SplitCut, SubtaskContext and the
// Handler interface the coordinator implements) are in package marker,
// which imports neither the runtime nor this package: that is the least
// that has to move to break the cycle, and package operator keeps its old
// names for them as aliases, so the runtime's code and its users did not
// change. The payload of a checkpoint barrier (Request) and what a restore
// hands the runtime (RestoreState) are this package's own: the runtime
// reads them, the coordinator makes them.
package coordinator
