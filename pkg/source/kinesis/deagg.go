package kinesis

import (
	"bytes"
	"crypto/md5" //nolint:gosec // the KPL aggregation format fixes an MD5 checksum (integrity, not security)
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// kplMagic starts every record aggregated by the Kinesis Producer Library.
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// Field numbers of the KPL AggregatedRecord and Record protobuf messages:
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
const (
	aggPartitionKeyTable = 1
	aggRecords           = 3
	recPartitionKeyIndex = 1
	recData              = 3
)

var errMalformedAggregate = errors.New("malformed KPL aggregated record")

// userRecord is one record packed into a KPL aggregate; both slices point
// into the aggregate's bytes.
type userRecord struct {
	key  []byte
	data []byte
}

// deaggregator splits KPL aggregates into their user records, reusing its
// memory across calls so de-aggregation allocates nothing per record.
type deaggregator struct {
	keys    [][]byte
	records []userRecord
}

// isAggregate tells whether data carries the KPL magic prefix and is long
// enough to hold the md5 trailer.
func isAggregate(data []byte) bool {
	return len(data) >= len(kplMagic)+md5.Size && bytes.Equal(data[:len(kplMagic)], kplMagic)
}

// split returns the user records of a KPL aggregate. The result is valid
// until the next call. It fails on a wrong checksum or a malformed message;
// the caller then delivers the record as it is.
func (d *deaggregator) split(data []byte) ([]userRecord, error) {
	if !isAggregate(data) {
		return nil, errMalformedAggregate
	}
	body := data[len(kplMagic) : len(data)-md5.Size]
	sum := md5.Sum(body) //nolint:gosec // the format's checksum, see the import
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, errMalformedAggregate
	}
	d.keys = d.keys[:0]
	d.records = d.records[:0]
	// The key table may follow the records on the wire: collect it first.
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errMalformedAggregate
		}
		b = b[n:]
		if num == aggPartitionKeyTable && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, errMalformedAggregate
			}
			d.keys = append(d.keys, v)
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, errMalformedAggregate
		}
		b = b[n:]
	}
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if num != aggRecords || typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		r, err := d.record(v)
		if err != nil {
			return nil, err
		}
		d.records = append(d.records, r)
	}
	return d.records, nil
}

// record decodes one Record message.
func (d *deaggregator) record(b []byte) (userRecord, error) {
	var (
		r               userRecord
		hasKey, hasData bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, errMalformedAggregate
		}
		b = b[n:]
		switch {
		case num == recPartitionKeyIndex && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 || v >= uint64(len(d.keys)) {
				return r, errMalformedAggregate
			}
			r.key, hasKey = d.keys[v], true
			b = b[n:]
		case num == recData && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return r, errMalformedAggregate
			}
			r.data, hasData = v, true
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return r, errMalformedAggregate
			}
			b = b[n:]
		}
	}
	if !hasKey || !hasData {
		return r, errMalformedAggregate
	}
	return r, nil
}
