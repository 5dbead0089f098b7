package record

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func geoField() Field {
	return Field{Name: "geo", Type: TypeStruct, Fields: []Field{
		{Name: "lat", Type: TypeFloat},
		{Name: "odd name", Type: TypeList, Elem: &Field{Type: TypeMap, Elem: &Field{Type: TypeInt}}},
	}}
}

func TestNestedFieldTypeString(t *testing.T) {
	require.Equal(t, "struct<lat:float,`odd name`:list<map<string,int>>>", geoField().TypeString())
	s := MustSchema(Field{Name: "id", Type: TypeInt}, geoField())
	require.Equal(t, "id:int, geo:struct<lat:float,`odd name`:list<map<string,int>>>", s.String())
}

func TestNestedFieldEqual(t *testing.T) {
	a, b := geoField(), geoField()
	require.True(t, a.Equal(b))
	b.Fields[1].Elem.Elem = &Field{Type: TypeFloat}
	require.False(t, a.Equal(b))
	c := geoField()
	c.Fields = c.Fields[:1]
	require.False(t, a.Equal(c))
	require.True(t, FieldsEqual([]Field{a}, []Field{geoField()}))
	require.False(t, FieldsEqual([]Field{a}, []Field{a, a}))
}

func TestNestedFieldValidate(t *testing.T) {
	for _, tc := range []struct {
		f    Field
		want string
	}{
		{Field{Name: "s", Type: TypeStruct}, `field "s": a struct needs at least one field`},
		{Field{Name: "l", Type: TypeList}, `field "l": a list needs its element type`},
		{Field{Name: "m", Type: TypeMap, Fields: []Field{{Name: "a", Type: TypeInt}}}, `field "m": a map has an element type, not fields`},
		{Field{Name: "s", Type: TypeStruct, Fields: []Field{{Name: "a", Type: TypeList, Elem: &Field{Type: TypeNull}}}}, `field "s.a[]": unsupported type null`},
		{Field{Name: "i", Type: TypeInt, Elem: &Field{Type: TypeInt}}, `field "i": type int has no fields`},
	} {
		require.ErrorContains(t, tc.f.Validate(), tc.want)
		_, err := NewSchema(tc.f)
		if tc.f.Type.Nested() {
			require.ErrorContains(t, err, tc.want)
		}
	}
	require.NoError(t, geoField().Validate())
}

func TestNestedValue(t *testing.T) {
	v := NestedValue(TypeList, `[1,null]`)
	require.Equal(t, `{"l":[1,null]}`, string(AppendJSON(nil, MustSchema(Field{Name: "l", Type: TypeList, Elem: &Field{Type: TypeInt}}), Row{v})))
	require.Equal(t, `null`, string(AppendJSONValue(nil, Value{T: TypeStruct})))
	require.Equal(t, `[1,null]`, string(v.AppendText(nil)))
	require.Equal(t, `[1,null]`, v.Any())
	require.Equal(t, "", TypeMap.GoZero())
	require.Equal(t, -1, Compare(NestedValue(TypeList, "[1]"), NestedValue(TypeList, "[2]")))
	c := v.Clone()
	require.True(t, Equal(v, c))
}
