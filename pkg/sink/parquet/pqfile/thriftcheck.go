package pqfile

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxThriftDepth bounds nesting; the row group list nests about five deep.
const maxThriftDepth = 32

// checkCompactStruct verifies that b is exactly one thrift compact-protocol
// struct whose lists and maps declare no more elements than bytes remain.
// parquet-go's decoder allocates a list's declared size up front, so an
// unchecked corrupt length would allocate gigabytes before failing.
func checkCompactStruct(b []byte) error {
	c := compactChecker{b: b}
	if err := c.structure(0); err != nil {
		return fmt.Errorf("check thrift struct: %w", err)
	}
	if len(c.b) != 0 {
		return fmt.Errorf("check thrift struct: %d trailing bytes", len(c.b))
	}
	return nil
}

type compactChecker struct{ b []byte }

var errThriftTruncated = errors.New("truncated")

func (c *compactChecker) byte1() (byte, error) {
	if len(c.b) == 0 {
		return 0, errThriftTruncated
	}
	v := c.b[0]
	c.b = c.b[1:]
	return v, nil
}

func (c *compactChecker) uvarint() (uint64, error) {
	v, n := binary.Uvarint(c.b)
	if n <= 0 {
		return 0, errors.New("bad varint")
	}
	c.b = c.b[n:]
	return v, nil
}

func (c *compactChecker) skip(n uint64) error {
	if n > uint64(len(c.b)) {
		return errThriftTruncated
	}
	c.b = c.b[n:]
	return nil
}

func (c *compactChecker) structure(depth int) error {
	if depth > maxThriftDepth {
		return errors.New("nested too deep")
	}
	for {
		h, err := c.byte1()
		if err != nil {
			return err
		}
		if h == 0 { // stop
			return nil
		}
		if h>>4 == 0 { // long form: the field id follows
			if _, err := c.uvarint(); err != nil {
				return err
			}
		}
		if err := c.value(h&0x0f, depth); err != nil {
			return err
		}
	}
}

// value skips one value of compact type t.
func (c *compactChecker) value(t byte, depth int) error {
	switch t {
	case 1, 2: // boolean true/false, held in the field header
		return nil
	case 3: // i8
		return c.skip(1)
	case 4, 5, 6: // i16, i32, i64 as zigzag varints
		_, err := c.uvarint()
		return err
	case 7: // double
		return c.skip(8)
	case 8: // binary
		n, err := c.uvarint()
		if err != nil {
			return err
		}
		return c.skip(n)
	case 9, 10: // list, set
		h, err := c.byte1()
		if err != nil {
			return err
		}
		n := uint64(h >> 4)
		if n == 0x0f {
			if n, err = c.uvarint(); err != nil {
				return err
			}
		}
		if n > uint64(len(c.b)) {
			return fmt.Errorf("list of %d elements in %d bytes", n, len(c.b))
		}
		for range n {
			if err := c.element(h&0x0f, depth); err != nil {
				return err
			}
		}
		return nil
	case 11: // map
		n, err := c.uvarint()
		if err != nil || n == 0 {
			return err
		}
		kv, err := c.byte1()
		if err != nil {
			return err
		}
		if n > uint64(len(c.b)) {
			return fmt.Errorf("map of %d entries in %d bytes", n, len(c.b))
		}
		for range n {
			if err := c.element(kv>>4, depth); err != nil {
				return err
			}
			if err := c.element(kv&0x0f, depth); err != nil {
				return err
			}
		}
		return nil
	case 12: // struct
		return c.structure(depth + 1)
	case 13: // uuid
		return c.skip(16)
	default:
		return fmt.Errorf("unknown type %d", t)
	}
}

// element skips one list, set or map element: unlike a struct field, a
// boolean element takes a byte of its own.
func (c *compactChecker) element(t byte, depth int) error {
	if t == 1 || t == 2 {
		return c.skip(1)
	}
	return c.value(t, depth+1)
}
