package render

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"helm.sh/helm/v3/pkg/chartutil"
)

// The render worker's wire encoding. It is hand-written rather than JSON or
// gob because a worker's render must be byte for byte the in-process one:
// JSON turns an int64 value into a float64 (which a template prints as
// 1e+06 where it printed 1000000) and, through omitempty, an empty list
// into a missing one (which toJson prints as null where it printed []);
// gob drops empty slices too and needs a global type registry. This codec
// keeps every value's Go type and every nil.

// encoder appends to buf; it cannot fail, except on a value type the codec
// does not know, which sets err.
type encoder struct {
	buf []byte
	err error
}

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) u8(b byte)        { e.buf = append(e.buf, b) }

func (e *encoder) bool(b bool) {
	if b {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// length writes a slice's or map's length, with 0 for nil, so that nil and
// empty stay apart.
func (e *encoder) length(n int, isNil bool) {
	if isNil {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(n) + 1)
}

func (e *encoder) bytes(b []byte) {
	e.length(len(b), b == nil)
	e.buf = append(e.buf, b...)
}

func (e *encoder) strs(ss []string) {
	e.length(len(ss), ss == nil)
	for _, s := range ss {
		e.str(s)
	}
}

// strMap and anyMap write keys in order, so that one input always encodes
// to the same bytes: the render cache keys on them.
func (e *encoder) strMap(m map[string]string) {
	e.length(len(m), m == nil)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e.str(k)
		e.str(m[k])
	}
}

// Value tags. New tags go at the end: a worker is always the parent's own
// binary, but the numbers are what the wire says.
const (
	tagNil byte = iota
	tagFalse
	tagTrue
	tagString
	tagInt
	tagInt8
	tagInt16
	tagInt32
	tagInt64
	tagUint
	tagUint8
	tagUint16
	tagUint32
	tagUint64
	tagFloat32
	tagFloat64
	tagNumber    // json.Number
	tagMap       // map[string]any
	tagValues    // chartutil.Values
	tagList      // []any
	tagStrings   // []string
	tagStringMap // map[string]string
	tagMaps      // []map[string]any
)

// value encodes a values tree: the types YAML, JSON, Helm's strvals and
// client-go's unstructured objects produce. Any other type is an error
// naming it (never its content).
func (e *encoder) value(v any) {
	switch x := v.(type) {
	case nil:
		e.u8(tagNil)
	case bool:
		if x {
			e.u8(tagTrue)
		} else {
			e.u8(tagFalse)
		}
	case string:
		e.u8(tagString)
		e.str(x)
	case int:
		e.u8(tagInt)
		e.varint(int64(x))
	case int8:
		e.u8(tagInt8)
		e.varint(int64(x))
	case int16:
		e.u8(tagInt16)
		e.varint(int64(x))
	case int32:
		e.u8(tagInt32)
		e.varint(int64(x))
	case int64:
		e.u8(tagInt64)
		e.varint(x)
	case uint:
		e.u8(tagUint)
		e.uvarint(uint64(x))
	case uint8:
		e.u8(tagUint8)
		e.uvarint(uint64(x))
	case uint16:
		e.u8(tagUint16)
		e.uvarint(uint64(x))
	case uint32:
		e.u8(tagUint32)
		e.uvarint(uint64(x))
	case uint64:
		e.u8(tagUint64)
		e.uvarint(x)
	case float32:
		e.u8(tagFloat32)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, math.Float32bits(x))
	case float64:
		e.u8(tagFloat64)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(x))
	case json.Number:
		e.u8(tagNumber)
		e.str(string(x))
	case map[string]any:
		e.u8(tagMap)
		e.anyMap(x)
	case chartutil.Values:
		e.u8(tagValues)
		e.anyMap(x)
	case []any:
		e.u8(tagList)
		e.length(len(x), x == nil)
		for _, el := range x {
			e.value(el)
		}
	case []string:
		e.u8(tagStrings)
		e.strs(x)
	case map[string]string:
		e.u8(tagStringMap)
		e.strMap(x)
	case []map[string]any:
		e.u8(tagMaps)
		e.length(len(x), x == nil)
		for _, m := range x {
			e.anyMap(m)
		}
	default:
		if e.err == nil {
			e.err = fmt.Errorf("a value of type %T cannot be sent to the render worker", v)
		}
		e.u8(tagNil)
	}
}

func (e *encoder) anyMap(m map[string]any) {
	e.length(len(m), m == nil)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e.str(k)
		e.value(m[k])
	}
}

// decoder reads what encoder wrote. The first malformed field sets err;
// every later read then returns zero values, so callers check err once.
// Lengths are checked against the bytes left before anything is allocated,
// so a garbled frame cannot make it allocate more than the frame's size.
type decoder struct {
	buf   []byte
	err   error
	depth int
}

// maxValueDepth bounds the nesting of a decoded values tree (encoding/json's
// own limit), so a garbled frame cannot exhaust the stack.
const maxValueDepth = 10000

var errShortFrame = errors.New("frame ends early")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.buf = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(errShortFrame)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail(errShortFrame)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) u8() byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 1 {
		d.fail(errShortFrame)
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) bool() bool {
	switch b := d.u8(); b {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(fmt.Errorf("bad boolean %d", b))
		return false
	}
}

func (d *decoder) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.buf) < n {
		d.fail(errShortFrame)
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

// count reads a length of elements each at least min bytes long.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.buf)/min) {
		d.fail(errShortFrame)
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

// length reads what encoder.length wrote: -1 for nil.
func (d *decoder) length(min int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n == 0 {
		return -1
	}
	if n-1 > uint64(len(d.buf)/min) {
		d.fail(errShortFrame)
		return 0
	}
	return int(n - 1)
}

func (d *decoder) str() string {
	return string(d.fixed(d.count(1)))
}

func (d *decoder) bytes() []byte {
	n := d.length(1)
	if n < 0 {
		return nil
	}
	return append([]byte{}, d.fixed(n)...)
}

func (d *decoder) strs() []string {
	n := d.length(1)
	if n < 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (d *decoder) strMap() map[string]string {
	n := d.length(2)
	if n < 0 {
		return nil
	}
	out := make(map[string]string, n)
	for range n {
		k := d.str()
		out[k] = d.str()
	}
	return out
}

func (d *decoder) value() any {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxValueDepth {
		d.fail(fmt.Errorf("values nested deeper than %d", maxValueDepth))
		return nil
	}
	switch tag := d.u8(); tag {
	case tagNil:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagString:
		return d.str()
	case tagInt:
		return int(d.varint())
	case tagInt8:
		return int8(d.varint())
	case tagInt16:
		return int16(d.varint())
	case tagInt32:
		return int32(d.varint())
	case tagInt64:
		return d.varint()
	case tagUint:
		return uint(d.uvarint())
	case tagUint8:
		return uint8(d.uvarint())
	case tagUint16:
		return uint16(d.uvarint())
	case tagUint32:
		return uint32(d.uvarint())
	case tagUint64:
		return d.uvarint()
	case tagFloat32:
		b := d.fixed(4)
		if b == nil {
			return nil
		}
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	case tagFloat64:
		b := d.fixed(8)
		if b == nil {
			return nil
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	case tagNumber:
		return json.Number(d.str())
	case tagMap:
		return d.anyMap()
	case tagValues:
		return chartutil.Values(d.anyMap())
	case tagList:
		n := d.length(1)
		if n < 0 {
			return []any(nil)
		}
		out := make([]any, n)
		for i := range out {
			out[i] = d.value()
		}
		return out
	case tagStrings:
		return d.strs()
	case tagStringMap:
		return d.strMap()
	case tagMaps:
		n := d.length(1)
		if n < 0 {
			return []map[string]any(nil)
		}
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = d.anyMap()
		}
		return out
	default:
		d.fail(fmt.Errorf("unknown value tag %d", tag))
		return nil
	}
}

func (d *decoder) anyMap() map[string]any {
	n := d.length(2)
	if n < 0 {
		return nil
	}
	out := make(map[string]any, n)
	for range n {
		k := d.str()
		out[k] = d.value()
	}
	return out
}
