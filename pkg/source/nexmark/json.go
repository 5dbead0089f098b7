package nexmark

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
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
		return 0, fmt.Errorf("write nexmark events: the generator is unbounded (set events)")
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
