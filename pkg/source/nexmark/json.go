package nexmark

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/streamd/streamd/internal/fileutil"
)

// AppendJSON appends e as one JSON object (no newline). Generated strings
// are letters, digits, spaces and URL characters only, so none needs
// escaping.
func AppendJSON(dst []byte, e *Event) []byte {
	dst = append(dst, `{"event_type":`...)
	dst = strconv.AppendInt(dst, int64(e.Kind), 10)
	dst = append(dst, `,"dateTime":`...)
	dst = strconv.AppendInt(dst, e.Time, 10)
	switch e.Kind {
	case KindPerson:
		p := &e.Person
		dst = append(dst, `,"person":{"id":`...)
		dst = strconv.AppendInt(dst, p.ID, 10)
		dst = appendStr(dst, `,"name":"`, p.Name)
		dst = appendStr(dst, `","emailAddress":"`, p.Email)
		dst = appendStr(dst, `","creditCard":"`, p.CreditCard)
		dst = appendStr(dst, `","city":"`, p.City)
		dst = appendStr(dst, `","state":"`, p.State)
		dst = appendStr(dst, `","extra":"`, p.Extra)
		dst = append(dst, `"}}`...)
	case KindAuction:
		a := &e.Auction
		dst = append(dst, `,"auction":{"id":`...)
		dst = strconv.AppendInt(dst, a.ID, 10)
		dst = appendStr(dst, `,"itemName":"`, a.ItemName)
		dst = appendStr(dst, `","description":"`, a.Description)
		dst = append(dst, `","initialBid":`...)
		dst = strconv.AppendInt(dst, a.InitialBid, 10)
		dst = append(dst, `,"reserve":`...)
		dst = strconv.AppendInt(dst, a.Reserve, 10)
		dst = append(dst, `,"expires":`...)
		dst = strconv.AppendInt(dst, a.Expires, 10)
		dst = append(dst, `,"seller":`...)
		dst = strconv.AppendInt(dst, a.Seller, 10)
		dst = append(dst, `,"category":`...)
		dst = strconv.AppendInt(dst, a.Category, 10)
		dst = appendStr(dst, `,"extra":"`, a.Extra)
		dst = append(dst, `"}}`...)
	default:
		b := &e.Bid
		dst = append(dst, `,"bid":{"auction":`...)
		dst = strconv.AppendInt(dst, b.Auction, 10)
		dst = append(dst, `,"bidder":`...)
		dst = strconv.AppendInt(dst, b.Bidder, 10)
		dst = append(dst, `,"price":`...)
		dst = strconv.AppendInt(dst, b.Price, 10)
		dst = appendStr(dst, `,"channel":"`, b.Channel)
		dst = appendStr(dst, `","url":"`, b.URL)
		dst = appendStr(dst, `","extra":"`, b.Extra)
		dst = append(dst, `"}}`...)
	}
	return dst
}

func appendStr(dst []byte, prefix string, s []byte) []byte {
	dst = append(dst, prefix...)
	return append(dst, s...)
}

// WriteJSONLines writes the events of split s (all of them: the generator
// must be bounded) to w as JSON lines, in order, and returns how many it
// wrote. It is how input files for benchmarks are produced.
func (g *Generator) WriteJSONLines(w io.Writer, s int) (int64, error) {
	n := g.SplitEvents(s)
	if n < 0 {
		return 0, errors.New("write nexmark events: the generator is unbounded (set events)")
	}
	if s < 0 || s >= g.cfg.Splits {
		return 0, fmt.Errorf("write nexmark events: split %d of %d", s, g.cfg.Splits)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var e Event
	line := make([]byte, 0, 1024)
	for k := range n {
		g.Event(g.EventNumber(s, k), &e)
		line = append(AppendJSON(line[:0], &e), '\n')
		if _, err := bw.Write(line); err != nil {
			return k, fmt.Errorf("write nexmark events: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write nexmark events: %w", err)
	}
	return n, nil
}

// WriteFiles writes every split of a bounded generator to dir as JSON
// lines, split s to events-<s>.jsonl, and returns the paths. Each file is
// written under a temporary name, synced and renamed (then the directory
// synced), so a reader never sees a partial file under the final name.
func (g *Generator) WriteFiles(dir string) ([]string, error) {
	if g.cfg.Events == 0 {
		return nil, errors.New("write nexmark files: the generator is unbounded (set events)")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("write nexmark files: %w", err)
	}
	paths := make([]string, 0, g.cfg.Splits)
	for s := range g.cfg.Splits {
		path := filepath.Join(dir, "events-"+strconv.Itoa(s)+".jsonl")
		if err := g.writeFile(path, s); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	if err := fileutil.SyncDir(dir); err != nil {
		return paths, fmt.Errorf("write nexmark files: %w", err)
	}
	return paths, nil
}

func (g *Generator) writeFile(path string, s int) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".events-*.tmp")
	if err != nil {
		return fmt.Errorf("write nexmark file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := g.WriteJSONLines(f, s); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write nexmark file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write nexmark file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write nexmark file: %w", err)
	}
	return nil
}
