// Package difftest checks rule stages differentially: seeded random
// workloads run through the real runtime (a scripted source, split tasks,
// the keyBy exchange and the rule stage's subtasks, made deterministic with
// testing/synctest) and through a small reference model that replays the
// documented rule semantics by brute force per (rule, key). Alerts and late
// records must agree exactly; a disagreement prints the seed and a
// minimized workload.
//
// The package holds tests only. The default run (part of `go test ./...`)
// covers a few hundred cases; a long run is one command:
//
//	RULEDIFF_CASES=20000 go test ./pkg/rules/difftest -run TestRuleDifferential -timeout 2h
//
// RULEDIFF_FIRST=N starts at seed N instead of 1. RULEDIFF_SEED=N runs one
// case (the seed a failure prints) with its workload and alerts in the log
// (-v).
//
// Workloads are compared in the order the stage receives its input; the
// harness fixes that order by handing each scripted batch to its split and
// waiting (synctest.Wait) until every goroutine of the runtime is idle.
// Rule changes wait in the splits until their reads return: the harness
// advances the bubble's clock by one tick after each change.
package difftest
