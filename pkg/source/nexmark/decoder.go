package nexmark

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
)

// attr is one attribute of the event model a declared field can read.
type attr uint8

const (
	attrEventType attr = iota
	attrDateTime
	attrPersonID
	attrPersonName
	attrPersonEmail
	attrPersonCreditCard
	attrPersonCity
	attrPersonState
	attrPersonExtra
	attrAuctionID
	attrAuctionItemName
	attrAuctionDescription
	attrAuctionInitialBid
	attrAuctionReserve
	attrAuctionExpires
	attrAuctionSeller
	attrAuctionCategory
	attrAuctionExtra
	attrBidAuction
	attrBidBidder
	attrBidPrice
	attrBidChannel
	attrBidURL
	attrBidExtra
)

// attrSpec is what an attribute holds (TypeInt, TypeString, or
// TypeTimestamp for epoch-millisecond numbers) and which events have it.
type attrSpec struct {
	a    attr
	typ  record.Type
	kind int // the Kind it belongs to, -1 for every event
}

// attrs maps the JSON paths of the package doc's format to attributes.
var attrs = map[string]attrSpec{
	"event_type":          {attrEventType, record.TypeInt, -1},
	"dateTime":            {attrDateTime, record.TypeTimestamp, -1},
	"person.id":           {attrPersonID, record.TypeInt, int(KindPerson)},
	"person.name":         {attrPersonName, record.TypeString, int(KindPerson)},
	"person.emailAddress": {attrPersonEmail, record.TypeString, int(KindPerson)},
	"person.creditCard":   {attrPersonCreditCard, record.TypeString, int(KindPerson)},
	"person.city":         {attrPersonCity, record.TypeString, int(KindPerson)},
	"person.state":        {attrPersonState, record.TypeString, int(KindPerson)},
	"person.extra":        {attrPersonExtra, record.TypeString, int(KindPerson)},
	"auction.id":          {attrAuctionID, record.TypeInt, int(KindAuction)},
	"auction.itemName":    {attrAuctionItemName, record.TypeString, int(KindAuction)},
	"auction.description": {attrAuctionDescription, record.TypeString, int(KindAuction)},
	"auction.initialBid":  {attrAuctionInitialBid, record.TypeInt, int(KindAuction)},
	"auction.reserve":     {attrAuctionReserve, record.TypeInt, int(KindAuction)},
	"auction.expires":     {attrAuctionExpires, record.TypeTimestamp, int(KindAuction)},
	"auction.seller":      {attrAuctionSeller, record.TypeInt, int(KindAuction)},
	"auction.category":    {attrAuctionCategory, record.TypeInt, int(KindAuction)},
	"auction.extra":       {attrAuctionExtra, record.TypeString, int(KindAuction)},
	"bid.auction":         {attrBidAuction, record.TypeInt, int(KindBid)},
	"bid.bidder":          {attrBidBidder, record.TypeInt, int(KindBid)},
	"bid.price":           {attrBidPrice, record.TypeInt, int(KindBid)},
	"bid.channel":         {attrBidChannel, record.TypeString, int(KindBid)},
	"bid.url":             {attrBidURL, record.TypeString, int(KindBid)},
	"bid.extra":           {attrBidExtra, record.TypeString, int(KindBid)},
}

// Paths lists the JSON paths of the event format, sorted.
func Paths() []string {
	out := make([]string, 0, len(attrs))
	for p := range attrs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

type nativeField struct {
	spec     attrSpec
	name     string
	typ      record.Type
	required bool
	key      bool
}

// Decoder builds rows straight from event numbers (FormatNative
// messages), with the same rows, dead-letter reasons and event times the
// JSON decoder gives for the same declared fields on the JSON form of the
// events. It is used by one goroutine.
type Decoder struct {
	g         *Generator
	fields    []nativeField
	schema    *record.Schema
	eventIdx  int
	maxFuture time.Duration
	now       func() time.Time
	maxKey    int
	// extra: some field reads an extra attribute, so events need their
	// padding (the most expensive part of an event to compute).
	extra   bool
	ev      Event
	scratch []record.Value
}

// NewDecoder builds a native decoder for cfg's declared fields. Paths must
// name attributes of the event format (Paths); a field's type must hold
// its attribute as the JSON decoder would read it: ints as int or float,
// strings as string, epoch-millisecond times as timestamp (auto or
// epoch_ms), int or float. Raw fields and an extras field have no native
// form and are refused.
func (g *Generator) NewDecoder(cfg decode.Config) (*Decoder, error) {
	if len(cfg.Fields) == 0 {
		return nil, errors.New("new nexmark decoder: no fields declared")
	}
	if cfg.ExtrasField != "" {
		return nil, errors.New("new nexmark decoder: decode.extras is not available with format native")
	}
	d := &Decoder{g: g, eventIdx: -1, maxFuture: cfg.MaxFuture, now: cfg.Now, maxKey: cfg.MaxKeyBytes}
	if d.now == nil {
		d.now = time.Now
	}
	schemaFields := make([]record.Field, 0, len(cfg.Fields))
	for i, f := range cfg.Fields {
		path := f.Name
		if len(f.Path) > 0 {
			path = strings.Join(f.Path, ".")
		}
		spec, ok := attrs[path]
		if !ok {
			return nil, fmt.Errorf("new nexmark decoder: field %q: path %q is not in the event format (want one of %s)", f.Name, path, strings.Join(Paths(), ", "))
		}
		if f.Raw {
			return nil, fmt.Errorf("new nexmark decoder: field %q: json fields are not available with format native", f.Name)
		}
		if err := checkType(f, spec); err != nil {
			return nil, fmt.Errorf("new nexmark decoder: field %q (%s): %w", f.Name, path, err)
		}
		if f.Name == cfg.EventTimeField {
			if f.Type != record.TypeTimestamp {
				return nil, fmt.Errorf("new nexmark decoder: event time field %q has type %s, want timestamp", f.Name, f.Type)
			}
			d.eventIdx = i
		}
		d.fields = append(d.fields, nativeField{spec: spec, name: f.Name, typ: f.Type, required: f.Required, key: f.Key})
		d.extra = d.extra || spec.a == attrPersonExtra || spec.a == attrAuctionExtra || spec.a == attrBidExtra
		schemaFields = append(schemaFields, record.Field{Name: f.Name, Type: f.Type})
	}
	if cfg.EventTimeField != "" && d.eventIdx < 0 {
		return nil, fmt.Errorf("new nexmark decoder: event time field %q is not declared", cfg.EventTimeField)
	}
	schema, err := record.NewSchema(schemaFields...)
	if err != nil {
		return nil, fmt.Errorf("new nexmark decoder: %w", err)
	}
	d.schema = schema
	d.scratch = make([]record.Value, len(d.fields))
	return d, nil
}

func checkType(f decode.Field, spec attrSpec) error {
	switch spec.typ {
	case record.TypeString:
		if f.Type == record.TypeString {
			return nil
		}
	case record.TypeInt:
		if f.Type == record.TypeInt || f.Type == record.TypeFloat {
			return nil
		}
	case record.TypeTimestamp:
		switch f.Type {
		case record.TypeInt, record.TypeFloat:
			return nil
		case record.TypeTimestamp:
			if f.TimeFormat == decode.TimeAuto || f.TimeFormat == decode.TimeEpochMS {
				return nil
			}
			return fmt.Errorf("times are epoch milliseconds: format %s does not read them", f.TimeFormat)
		}
	}
	return fmt.Errorf("holds %s values, which a %s field does not read", spec.typ, f.Type)
}

// Schema returns the schema of the rows Decode appends.
func (d *Decoder) Schema() *record.Schema { return d.schema }

// ReasonInvalidEvent is the dead-letter reason of a native message that
// is not an event number of the generator.
const ReasonInvalidEvent = "invalid_nexmark_event"

// Decode reads an 8-byte big-endian event number and appends its row.
func (d *Decoder) Decode(msg []byte, brokerTS int64, b *record.Batch) error {
	if len(msg) != 8 {
		return &decode.Error{Reason: ReasonInvalidEvent, Detail: fmt.Sprintf("native nexmark message of %d bytes, want an 8-byte event number", len(msg))}
	}
	n := int64(binary.BigEndian.Uint64(msg)) //nolint:gosec // out-of-range numbers are refused below
	if !d.g.Valid(n) {
		return &decode.Error{Reason: ReasonInvalidEvent, Detail: fmt.Sprintf("event number %d is not one of this generator's", n)}
	}
	d.g.event(n, &d.ev, d.extra)
	e := &d.ev
	for i := range d.fields {
		f := &d.fields[i]
		if f.spec.kind >= 0 && Kind(f.spec.kind) != e.Kind {
			if f.required {
				return &decode.Error{Reason: decode.ReasonMissingField, Detail: fmt.Sprintf("required field %q is absent", f.name)}
			}
			d.scratch[i] = record.Null
			continue
		}
		v, str := d.value(f.spec.a, e)
		switch {
		case str != nil || f.spec.typ == record.TypeString:
			if f.key && d.maxKey > 0 && len(str) > d.maxKey {
				return &decode.Error{Reason: decode.ReasonKeyTooLarge, Detail: fmt.Sprintf("key field %q of %d bytes is over the limit of %d bytes (decode.maxKeyBytes)", f.name, len(str), d.maxKey)}
			}
			d.scratch[i] = record.Value{T: record.TypeString}
		case f.typ == record.TypeFloat:
			d.scratch[i] = record.Float(float64(v))
		case f.typ == record.TypeTimestamp:
			d.scratch[i] = record.TimestampMillis(v)
		default:
			d.scratch[i] = record.Int(v)
		}
	}
	eventMS := brokerTS
	if d.eventIdx >= 0 {
		eventMS = int64(d.scratch[d.eventIdx].N) / 1000 //nolint:gosec // a timestamp's int64 bits
	} else if brokerTS <= 0 {
		return &decode.Error{Reason: decode.ReasonNoEventTime, Detail: "no event time field configured and the message has no timestamp"}
	}
	if d.maxFuture > 0 && eventMS > d.now().Add(d.maxFuture).UnixMilli() {
		return &decode.Error{Reason: decode.ReasonFutureTimestamp, Detail: fmt.Sprintf("event time %s is more than %s ahead of now",
			time.UnixMilli(eventMS).UTC().Format(time.RFC3339Nano), d.maxFuture)}
	}
	row := b.AppendRow(eventMS)
	for i := range d.fields {
		v := d.scratch[i]
		if v.T == record.TypeString {
			_, str := d.value(d.fields[i].spec.a, e)
			v.S = b.Intern(str)
		}
		row[i] = v
	}
	return nil
}

// value returns an attribute of e: a number, or its bytes for strings.
func (d *Decoder) value(a attr, e *Event) (int64, []byte) {
	switch a {
	case attrEventType:
		return int64(e.Kind), nil
	case attrDateTime:
		return e.Time, nil
	case attrPersonID:
		return e.Person.ID, nil
	case attrPersonName:
		return 0, e.Person.Name
	case attrPersonEmail:
		return 0, e.Person.Email
	case attrPersonCreditCard:
		return 0, e.Person.CreditCard
	case attrPersonCity:
		return 0, e.Person.City
	case attrPersonState:
		return 0, e.Person.State
	case attrPersonExtra:
		return 0, e.Person.Extra
	case attrAuctionID:
		return e.Auction.ID, nil
	case attrAuctionItemName:
		return 0, e.Auction.ItemName
	case attrAuctionDescription:
		return 0, e.Auction.Description
	case attrAuctionInitialBid:
		return e.Auction.InitialBid, nil
	case attrAuctionReserve:
		return e.Auction.Reserve, nil
	case attrAuctionExpires:
		return e.Auction.Expires, nil
	case attrAuctionSeller:
		return e.Auction.Seller, nil
	case attrAuctionCategory:
		return e.Auction.Category, nil
	case attrAuctionExtra:
		return 0, e.Auction.Extra
	case attrBidAuction:
		return e.Bid.Auction, nil
	case attrBidBidder:
		return e.Bid.Bidder, nil
	case attrBidPrice:
		return e.Bid.Price, nil
	case attrBidChannel:
		return 0, e.Bid.Channel
	case attrBidURL:
		return 0, e.Bid.URL
	}
	return 0, e.Bid.Extra
}
