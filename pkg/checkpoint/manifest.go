package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/source"
)

// ManifestVersion is the manifest format written by this build.
const ManifestVersion = 1

// Manifest describes one complete checkpoint. A checkpoint exists exactly
// when its manifest does: everything it references is written first.
type Manifest struct {
	Version  int       `json:"version"`
	ID       int64     `json:"id"`
	Pipeline string    `json:"pipeline"`
	Created  time.Time `json:"created"`
	// Savepoint marks checkpoints taken on request or at shutdown.
	Savepoint bool `json:"savepoint,omitempty"`
	// Final marks the checkpoint a pipeline takes when its input ended or
	// a stop drained it: it covers everything the run published.
	Final     bool         `json:"final,omitempty"`
	KeyGroups int          `json:"keyGroups"`
	Splits    []SplitState `json:"splits"`
	Stages    []StageState `json:"stages"`
	Sinks     []SinkState  `json:"sinks,omitempty"`
	// Marks holds, by sink, where in its output the hand-over of this
	// checkpoint's rows begins at the earliest (see
	// sink.CheckpointCommitter), for sinks that read their output back.
	Marks map[string][]byte `json:"marks,omitempty"`
}

// SplitState is where a split resumes.
type SplitState struct {
	Source    string          `json:"source"`
	Split     string          `json:"split"`
	Next      source.Position `json:"next"`
	Watermark int64           `json:"watermark"`
	// Finished marks a split read to its end (a closed Kinesis shard, a
	// file read once): it is not opened again on restore.
	Finished bool `json:"finished,omitempty"`
}

// StageState is the keyed state of one stage: one blob per subtask, with
// the key groups it holds.
type StageState struct {
	Stage string      `json:"stage"`
	Blobs []StateBlob `json:"blobs"`
}

// StateBlob is one subtask's state object and the byte ranges of its key groups.
type StateBlob struct {
	Key       string          `json:"key"`
	Size      int64           `json:"size"`
	Watermark int64           `json:"watermark"`
	Groups    []KeyGroupRange `json:"groups"`
}

// KeyGroupRange locates a key group's snapshot inside a blob.
type KeyGroupRange struct {
	KeyGroup uint16 `json:"kg"`
	Offset   int64  `json:"off"`
	Length   int64  `json:"len"`
}

// SinkState is what one sink writer needs to commit and resume its output.
// A large state (rows held for exactly-once delivery) is written as a blob
// of its own, Key, of Size bytes, rather than inline: the manifest stays
// small, and encoding it does not copy megabytes through base64 and JSON.
// Load and Latest leave it there; the runtime reads it on restore.
type SinkState struct {
	Sink  string `json:"sink"`
	Task  string `json:"task"`
	State []byte `json:"state,omitempty"`
	Key   string `json:"key,omitempty"`
	Size  int64  `json:"size,omitempty"`
}

// Naming of checkpoint objects under a pipeline's prefix.
const manifestName = "_manifest.json"

// Dir is the directory of checkpoint id under prefix.
func Dir(prefix string, id int64) string {
	return strings.TrimSuffix(prefix, "/") + "/chk-" + fmt.Sprintf("%012d", id)
}

// ManifestKey is the key of checkpoint id's manifest.
func ManifestKey(prefix string, id int64) string { return Dir(prefix, id) + "/" + manifestName }

// Encode renders the manifest as indented JSON.
func (m *Manifest) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return b, nil
}

// DecodeManifest parses and checks a manifest.
func DecodeManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("decode manifest: version %d is not supported (this build reads %d)", m.Version, ManifestVersion)
	}
	if m.ID <= 0 {
		return nil, fmt.Errorf("decode manifest: invalid id %d", m.ID)
	}
	if m.KeyGroups <= 0 || m.KeyGroups > 1<<15 {
		return nil, fmt.Errorf("decode manifest: invalid key group count %d", m.KeyGroups)
	}
	for _, st := range m.Stages {
		for _, b := range st.Blobs {
			for _, g := range b.Groups {
				if int(g.KeyGroup) >= m.KeyGroups || g.Offset < 0 || g.Length < 0 || g.Offset+g.Length > b.Size {
					return nil, fmt.Errorf("decode manifest: stage %q blob %q: key group range %+v is out of bounds", st.Stage, b.Key, g)
				}
			}
		}
	}
	return &m, nil
}

// Info summarises a stored checkpoint.
type Info struct {
	ID       int64
	Manifest string
}

// List returns the checkpoints under prefix that have a manifest, oldest first.
func List(ctx context.Context, st store.Store, prefix string) ([]Info, error) {
	objs, err := st.List(ctx, strings.TrimSuffix(prefix, "/")+"/chk-")
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var out []Info
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, "/"+manifestName) {
			continue
		}
		dir := strings.TrimSuffix(o.Key, "/"+manifestName)
		i := strings.LastIndex(dir, "/chk-")
		if i < 0 {
			continue
		}
		id, err := strconv.ParseInt(dir[i+len("/chk-"):], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, Info{ID: id, Manifest: o.Key})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out, nil
}

// Load reads and decodes a manifest.
func Load(ctx context.Context, st store.Store, key string) (*Manifest, error) {
	r, err := st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	return DecodeManifest(data)
}

// ErrNoCheckpoint is returned by Latest when there is none.
var ErrNoCheckpoint = errors.New("no complete checkpoint")

// Latest returns the newest manifest that decodes. A newer manifest that
// does not decode is reported, not skipped silently: it means a newer build
// wrote it or the store is damaged.
func Latest(ctx context.Context, st store.Store, prefix string) (*Manifest, error) {
	infos, err := List(ctx, st, prefix)
	if err != nil {
		return nil, err
	}
	if len(infos) == 0 {
		return nil, ErrNoCheckpoint
	}
	return Load(ctx, st, infos[len(infos)-1].Manifest)
}
