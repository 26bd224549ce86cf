package stdlib

import (
	"database/sql/driver"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// resultFormats asks for the binary format of the types database/sql gets
// as Go values (bool, bytea, integers, floats, dates, timestamps, oid, xid,
// cid), and text for every other type, which database/sql gets as a string:
// what pgx's stdlib asks for.
var resultFormats = pgx.QueryResultFormatsByOID{
	pgtype.BoolOID:        pgx.BinaryFormatCode,
	pgtype.ByteaOID:       pgx.BinaryFormatCode,
	pgtype.CIDOID:         pgx.BinaryFormatCode,
	pgtype.DateOID:        pgx.BinaryFormatCode,
	pgtype.Float4OID:      pgx.BinaryFormatCode,
	pgtype.Float8OID:      pgx.BinaryFormatCode,
	pgtype.Int2OID:        pgx.BinaryFormatCode,
	pgtype.Int4OID:        pgx.BinaryFormatCode,
	pgtype.Int8OID:        pgx.BinaryFormatCode,
	pgtype.OIDOID:         pgx.BinaryFormatCode,
	pgtype.TimestampOID:   pgx.BinaryFormatCode,
	pgtype.TimestamptzOID: pgx.BinaryFormatCode,
	pgtype.XIDOID:         pgx.BinaryFormatCode,
}

// rows are a query's rows for database/sql. The first row was read when
// the query ran (query1).
type rows struct {
	rows  pgx.Rows
	first bool // the first row is read and not yet returned
	more  bool // what the first Next returned
	names []string
	conv  []converter
}

var (
	_ driver.Rows                           = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeLength           = (*rows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*rows)(nil)
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
)

// Columns returns the names of the columns.
func (r *rows) Columns() []string {
	if r.names == nil {
		fds := r.rows.FieldDescriptions()
		r.names = make([]string, len(fds))
		for i, fd := range fds {
			r.names[i] = fd.Name
		}
	}
	return r.names
}

// Close closes the rows; the error is the query's, if it failed while its
// rows were read.
func (r *rows) Close() error {
	r.rows.Close()
	return r.rows.Err()
}

// Next reads the next row into dest.
func (r *rows) Next(dest []driver.Value) error {
	more := r.more
	if r.first {
		r.first = false
	} else {
		more = r.rows.Next()
	}
	if !more {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	if r.conv == nil {
		r.plan()
	}
	for i, raw := range r.rows.RawValues() {
		if raw == nil {
			dest[i] = nil
			continue
		}
		v, err := r.conv[i].value(raw)
		if err != nil {
			return fmt.Errorf("pgxroute/stdlib: column %d (%s): %w", i, r.rows.FieldDescriptions()[i].Name, err)
		}
		dest[i] = v
	}
	return nil
}

// kind is what a column's values become for database/sql.
type kind uint8

const (
	kindString kind = iota
	kindBool
	kindBytes // bytea, json, jsonb, xml
	kindInt16
	kindInt32
	kindInt64
	kindFloat32
	kindFloat64
	kindUint32 // oid, xid, cid: int64
	kindDate
	kindTimestamp
	kindTimestamptz
)

// kindOf returns the kind of a column of type oid.
func kindOf(oid uint32) kind {
	switch oid {
	case pgtype.BoolOID:
		return kindBool
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		return kindBytes
	case pgtype.Int2OID:
		return kindInt16
	case pgtype.Int4OID:
		return kindInt32
	case pgtype.Int8OID:
		return kindInt64
	case pgtype.Float4OID:
		return kindFloat32
	case pgtype.Float8OID:
		return kindFloat64
	case pgtype.OIDOID, pgtype.XIDOID, pgtype.CIDOID:
		return kindUint32
	case pgtype.DateOID:
		return kindDate
	case pgtype.TimestampOID:
		return kindTimestamp
	case pgtype.TimestamptzOID:
		return kindTimestamptz
	}
	return kindString
}

// converter turns a column's raw values into driver values with pgx's
// scan plan for the column's type, format and Go type.
type converter struct {
	kind kind
	plan pgtype.ScanPlan
	t    any // what plan scans into, reused row after row
}

// target returns a pointer to a value of the Go type kind k scans into.
func (k kind) target() any {
	switch k {
	case kindBool:
		return new(bool)
	case kindBytes:
		return new([]byte)
	case kindInt16:
		return new(int16)
	case kindInt32:
		return new(int32)
	case kindInt64:
		return new(int64)
	case kindFloat32:
		return new(float32)
	case kindFloat64:
		return new(float64)
	case kindUint32:
		return new(pgtype.Uint32)
	case kindDate:
		return new(pgtype.Date)
	case kindTimestamp:
		return new(pgtype.Timestamp)
	case kindTimestamptz:
		return new(pgtype.Timestamptz)
	}
	return new(string)
}

// plan makes the converters of the columns.
func (r *rows) plan() {
	m := r.rows.Conn().TypeMap()
	fds := r.rows.FieldDescriptions()
	r.conv = make([]converter, len(fds))
	for i, fd := range fds {
		k := kindOf(fd.DataTypeOID)
		t := k.target()
		r.conv[i] = converter{kind: k, plan: m.PlanScan(fd.DataTypeOID, fd.Format, t), t: t}
	}
}

// value converts one non-NULL raw value.
func (c converter) value(raw []byte) (driver.Value, error) {
	if err := c.plan.Scan(raw, c.t); err != nil {
		return nil, err
	}
	switch v := c.t.(type) {
	case *bool:
		return *v, nil
	case *[]byte:
		return *v, nil
	case *int16:
		return int64(*v), nil
	case *int32:
		return int64(*v), nil
	case *int64:
		return *v, nil
	case *float32:
		return float64(*v), nil
	case *float64:
		return *v, nil
	case *pgtype.Uint32:
		return v.Value()
	case *pgtype.Date:
		return v.Value()
	case *pgtype.Timestamp:
		return v.Value()
	case *pgtype.Timestamptz:
		return v.Value()
	case *string:
		return *v, nil
	}
	return nil, fmt.Errorf("unexpected scan target %T", c.t)
}

// ColumnTypeDatabaseTypeName returns the type's name in upper case
// ("INT8", "TEXT"), or its OID when pgx does not know it.
func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	oid := r.rows.FieldDescriptions()[i].DataTypeOID
	if t, ok := r.rows.Conn().TypeMap().TypeForOID(oid); ok {
		return strings.ToUpper(t.Name)
	}
	return strconv.FormatUint(uint64(oid), 10)
}

// typeHeader is the size of the header PostgreSQL counts in a varchar's
// and a numeric's type modifier.
const typeHeader = 4

// ColumnTypeLength returns the length of text, bytea and varchar columns.
func (r *rows) ColumnTypeLength(i int) (int64, bool) {
	fd := r.rows.FieldDescriptions()[i]
	switch fd.DataTypeOID {
	case pgtype.TextOID, pgtype.ByteaOID:
		return math.MaxInt64, true
	case pgtype.VarcharOID, pgtype.BPCharOID:
		if fd.TypeModifier < 0 {
			return math.MaxInt64, true
		}
		return int64(fd.TypeModifier - typeHeader), true
	}
	return 0, false
}

// ColumnTypePrecisionScale returns a numeric column's precision and scale.
func (r *rows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	fd := r.rows.FieldDescriptions()[i]
	if fd.DataTypeOID != pgtype.NumericOID || fd.TypeModifier < typeHeader {
		return 0, 0, false
	}
	mod := fd.TypeModifier - typeHeader
	return int64(mod>>16) & 0xffff, int64(mod) & 0xffff, true
}

// ColumnTypeScanType returns the Go type Next gives the column's values.
func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	switch kindOf(r.rows.FieldDescriptions()[i].DataTypeOID) {
	case kindBool:
		return reflect.TypeFor[bool]()
	case kindBytes:
		return reflect.TypeFor[[]byte]()
	case kindInt16, kindInt32, kindInt64, kindUint32:
		return reflect.TypeFor[int64]()
	case kindFloat32, kindFloat64:
		return reflect.TypeFor[float64]()
	case kindDate, kindTimestamp, kindTimestamptz:
		return reflect.TypeFor[time.Time]()
	}
	return reflect.TypeFor[string]()
}
