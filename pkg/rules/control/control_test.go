package control

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/streamd/streamd/pkg/rules"
)

func ruleDoc(id string, version int) string {
	return "id: " + id + "\nversion: " + itoa(version) + "\nselect: 'true'\nkey: [m]\nsignals:\n  t: {value: v}\ngroups:\n  - {name: hot, state: WARNING, conditions: [t > 80]}\n"
}

func itoa(i int) string { return strconv.Itoa(i) }

func write(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

func TestLoadSizeLimit(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), ruleDoc("a", 1))
	write(t, filepath.Join(dir, "big.yaml"), ruleDoc("big", 1)+"description: "+strings.Repeat("x", 2048)+"\n")
	f := &Files{Paths: []string{dir}, MaxBytes: 1024}
	_, err := f.Load()
	require.ErrorContains(t, err, "big.yaml: ")
	require.ErrorContains(t, err, "over the limit of 1024 bytes (rules.maxRuleBytes)")

	require.NoError(t, os.Remove(filepath.Join(dir, "big.yaml")))
	got, err := f.Load()
	require.NoError(t, err)
	require.Len(t, got, 1)
}

// recorder collects what Run delivers.
type recorder struct {
	mu   sync.Mutex
	puts []string
	dels []string
}

func (r *recorder) put(rule *rules.Rule) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.puts = append(r.puts, rule.ID+"@"+itoa(int(rule.Version)))
	return nil
}

func (r *recorder) del(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dels = append(r.dels, id)
	return nil
}

// TestRunRereadsOnlyChangedFiles: an unchanged file is not read again, a
// broken file is logged once per change however many polls see it, and a
// change is delivered once.
func TestRunRereadsOnlyChangedFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
		write(t, good, ruleDoc("good", 1))
		core, logs := observer.New(zap.DebugLevel)
		f := &Files{Paths: []string{dir}, Poll: time.Second, Log: zap.New(core), MaxBytes: 512}
		_, err := f.Load()
		require.NoError(t, err)
		require.EqualValues(t, 1, f.reads.Load())

		rec := &recorder{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx, rec.put, rec.del) }()
		synctest.Wait() // Run has scanned and waits for its first tick: files change only between polls

		write(t, bad, "id: [unclosed\n")
		for range 10 {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		rejected := logs.FilterMessage("rule file rejected; the running rule is unchanged")
		require.Equal(t, 1, rejected.Len(), "a broken file is logged once, not once per poll")
		require.EqualValues(t, 2, f.reads.Load(), "each file is read once; unchanged files are not read again")
		require.Empty(t, rec.puts)

		// Another mistake in the same file is a change: logged once more.
		write(t, bad, "id: x\nversion: nope\n")
		for range 5 {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		require.Equal(t, 2, logs.FilterMessage("rule file rejected; the running rule is unchanged").Len())

		// Fixed: delivered once; the good file still untouched.
		write(t, bad, ruleDoc("fixed", 2))
		for range 5 {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		require.Equal(t, []string{"fixed@2"}, rec.puts)
		require.EqualValues(t, 4, f.reads.Load(), "only the changed file is read")

		// Over the limit: rejected without being read, the rule is kept.
		write(t, bad, ruleDoc("fixed", 3)+"# "+strings.Repeat("x", 512)+"\n")
		for range 3 {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		require.Equal(t, []string{"fixed@2"}, rec.puts)
		require.Empty(t, rec.dels, "a rejected file keeps its running rule")
		require.EqualValues(t, 4, f.reads.Load(), "a file over the limit is not read")
		over := logs.FilterMessage("rule file rejected; the running rule is unchanged").All()
		require.Len(t, over, 3)
		require.Contains(t, over[2].ContextMap()["error"], "over the limit of 512 bytes")
		cancel()
		require.NoError(t, <-done)
	})
}

// FuzzRuleFile writes arbitrary content (invalid UTF-8 among the seeds) to
// a rule file and reads it the way the watcher does: it must never panic,
// a file over the limit is never parsed, and an accepted rule has an id.
func FuzzRuleFile(f *testing.F) {
	f.Add([]byte(ruleDoc("a", 1)))
	f.Add([]byte("{\"id\":\"k\xff\xfe\",\"version\":1}"))
	f.Add([]byte("id: \xed\xa0\x80\nversion: 1\nselect: \"\xc3\"\n"))
	f.Add([]byte("&a [*a, *a, *a, *a, *a, *a, *a, *a, *a]"))
	f.Add([]byte(strings.Repeat("x", 300)))
	dir := f.TempDir()
	path := filepath.Join(dir, "rule.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o600))
		files := &Files{Paths: []string{path}, MaxBytes: 256}
		rs, err := files.Load()
		if len(data) > 256 {
			require.ErrorContains(t, err, "over the limit of 256 bytes")
			require.Zero(t, files.reads.Load(), "a file over the limit is not read")
			return
		}
		if err == nil {
			require.Len(t, rs, 1)
			require.NotEmpty(t, rs[0].ID)
		}
	})
}
