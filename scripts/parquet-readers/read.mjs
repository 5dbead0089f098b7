// Reads Parquet files with a reader independent of the one that wrote them
// and prints, as JSON, what that reader sees: the schema, every row group's
// column chunk metadata and every row group's values. Tests compare the
// output of several readers with each other and with their input.
//
//   node read.mjs hyparquet|arrow FILE...
//   node read.mjs hyparquet-nested|arrow-nested FILE...
//
// The -nested forms print each row as its top-level columns, nested ones
// as trees: a struct as an object, a list as an array, a map as
// {"$map": [[key, value], ...]} (hyparquet: as an object, its own form),
// each leaf in the form above. Every schema element is listed, groups
// included, with its logical and converted type.
//
// hyparquet (pure JavaScript) decodes the footer itself and finds each
// column chunk by its path_in_schema, as parquet-mr (Spark, Hive) does.
// arrow is Apache Arrow's Rust reader (arrow-rs, compiled to WebAssembly as
// parquet-wasm), the reader of DataFusion, Polars and delta-rs.
//
// Values are printed as strings, so nothing is lost to JSON numbers:
// integers and timestamps in decimal (timestamps in microseconds since the
// epoch, whatever the file's unit), doubles as the hex of their IEEE 754
// bits ("NaN" for any NaN), booleans as "true"/"false", strings as they are
// and null as null.
import { readFileSync } from 'node:fs';

const micros = (v) => BigInt(v).toString();
const utf8 = new TextDecoder('utf-8', { fatal: true });
const parsers = {
  // JSON columns stay text, so they compare byte for byte; the text must
  // be valid UTF-8 and parse as JSON, or the read fails.
  jsonFromBytes: (b) => {
    if (!b) return b;
    const text = utf8.decode(b);
    JSON.parse(text);
    return text;
  },
  timestampFromMilliseconds: (v) => (BigInt(v) * 1000n).toString(),
  timestampFromMicroseconds: micros,
  timestampFromNanoseconds: (v) => (BigInt(v) / 1000n).toString(),
};

const f64 = new DataView(new ArrayBuffer(8));

// canon renders a decoded value as described above.
function canon(v) {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return v;
    case 'number':
      if (Number.isNaN(v)) return 'NaN';
      f64.setFloat64(0, v, true);
      return 'f' + f64.getBigUint64(0, true).toString(16).padStart(16, '0');
  }
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  if (v instanceof Date) return (BigInt(v.getTime()) * 1000n).toString();
  return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x));
}

// canonDouble renders a double column's value: readers return plain
// numbers, but an integer-valued double must not be read as an integer.
function canonDouble(v) {
  if (v === null || v === undefined) return null;
  return canon(Number(v));
}

async function readHyparquet(path) {
  const { parquetMetadata, parquetReadObjects } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const buf = readFileSync(path);
  const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const md = parquetMetadata(file, { parsers });
  const leaves = md.schema.slice(1);
  const isDouble = leaves.map((e) => e.type === 'DOUBLE' || e.type === 'FLOAT');
  const schema = leaves.map((e) => ({
    name: e.name,
    physical: e.type ?? 'GROUP',
    repetition: e.repetition_type ?? null,
    logical: e.logical_type ? logicalName(e.logical_type) : null,
    converted: e.converted_type ?? null,
  }));
  const rowGroups = [];
  let start = 0;
  for (const rg of md.row_groups) {
    const n = Number(rg.num_rows);
    const objects = n === 0 ? [] : await parquetReadObjects({
      file, metadata: md, compressors, parsers, rowStart: start, rowEnd: start + n,
    });
    start += n;
    rowGroups.push({
      numRows: n,
      sorting: (rg.sorting_columns ?? []).map((s) => ({
        column: s.column_idx, descending: s.descending, nullsFirst: s.nulls_first,
      })),
      columns: rg.columns.map((c, j) => {
        const m = c.meta_data;
        const st = m.statistics ?? {};
        const stat = (v) => (isDouble[j] ? canonDouble(v) : canon(v));
        return {
          path: m.path_in_schema,
          physical: m.type,
          encodings: m.encodings,
          codec: m.codec,
          numValues: Number(m.num_values),
          min: stat(st.min_value ?? st.min),
          max: stat(st.max_value ?? st.max),
          nullCount: st.null_count === undefined ? null : Number(st.null_count),
          pageTypes: [...new Set((m.encoding_stats ?? []).map((e) => e.page_type))].sort(),
        };
      }),
      rows: objects.map((o) => leaves.map((e, j) => (isDouble[j] ? canonDouble(o[e.name]) : canon(o[e.name])))),
    });
  }
  return { path, numRows: Number(md.num_rows), createdBy: md.created_by ?? null, schema, rowGroups };
}

function logicalName(lt) {
  switch (lt.type) {
    case 'TIMESTAMP':
      return `TIMESTAMP(${lt.unit},${lt.isAdjustedToUTC})`;
    case 'INTEGER':
      return `INTEGER(${lt.bitWidth},${lt.isSigned})`;
    default:
      return lt.type;
  }
}

// tree renders a value hyparquet assembled: structs and maps are objects,
// lists arrays, leaves as canon renders them (INT64 is a BigInt, DOUBLE a
// number).
function tree(v) {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return v.map(tree);
  if (v instanceof Map) return { $map: [...v.entries()].map(([k, x]) => [String(k), tree(x)]) };
  if (typeof v === 'object' && !(v instanceof Uint8Array) && !(v instanceof Date)) {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = tree(x);
    return o;
  }
  return canon(v);
}

function chunkMeta(c, isDouble) {
  const m = c.meta_data;
  const st = m.statistics ?? {};
  const stat = (v) => (isDouble ? canonDouble(v) : canon(v));
  return {
    path: m.path_in_schema,
    physical: m.type,
    encodings: m.encodings,
    codec: m.codec,
    numValues: Number(m.num_values),
    min: stat(st.min_value ?? st.min),
    max: stat(st.max_value ?? st.max),
    nullCount: st.null_count === undefined ? null : Number(st.null_count),
    pageTypes: [...new Set((m.encoding_stats ?? []).map((e) => e.page_type))].sort(),
  };
}

async function readHyparquetNested(path) {
  const { parquetMetadata, parquetReadObjects, parquetSchema } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const buf = readFileSync(path);
  const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const md = parquetMetadata(file, { parsers });
  const top = parquetSchema(md).children.map((c) => c.element.name);
  const schema = md.schema.slice(1).map((e) => ({
    name: e.name,
    physical: e.type ?? 'GROUP',
    repetition: e.repetition_type ?? null,
    logical: e.logical_type ? logicalName(e.logical_type) : null,
    converted: e.converted_type ?? null,
  }));
  const leafTypes = md.schema.filter((e) => e.type !== undefined).map((e) => e.type);
  const rowGroups = [];
  let start = 0;
  for (const rg of md.row_groups) {
    const n = Number(rg.num_rows);
    const objects = n === 0 ? [] : await parquetReadObjects({
      file, metadata: md, compressors, parsers, rowStart: start, rowEnd: start + n,
    });
    start += n;
    rowGroups.push({
      numRows: n,
      columns: rg.columns.map((c, j) => chunkMeta(c, leafTypes[j] === 'DOUBLE' || leafTypes[j] === 'FLOAT')),
      rows: objects.map((o) => top.map((name) => tree(o[name]))),
    });
  }
  return { path, numRows: Number(md.num_rows), schema, rowGroups };
}

// arrowValue renders element i of Arrow data from its buffers, recursing
// into struct, list and map children; timestamps as raw integers in
// microseconds, so no conversion of the JavaScript bindings hides a unit.
function arrowValue(data, i, Type) {
  if (!data.getValid(i)) return null;
  const at = data.offset + i;
  switch (data.typeId) {
    case Type.Struct: {
      const o = {};
      data.type.children.forEach((f, j) => { o[f.name] = arrowValue(data.children[j], i, Type); });
      return o;
    }
    case Type.List: {
      const out = [];
      for (let k = data.valueOffsets[at]; k < data.valueOffsets[at + 1]; k++) out.push(arrowValue(data.children[0], k, Type));
      return out;
    }
    case Type.Map: {
      const entries = data.children[0];
      const pairs = [];
      for (let k = data.valueOffsets[at]; k < data.valueOffsets[at + 1]; k++) {
        pairs.push([arrowValue(entries.children[0], k, Type), arrowValue(entries.children[1], k, Type)]);
      }
      return { $map: pairs };
    }
    case Type.Timestamp:
      return timestampMicros(BigInt(data.values[at]), String(data.type));
    case Type.Float:
      return canonDouble(data.values[at]);
    case Type.Int:
      return BigInt(data.values[at]).toString();
    case Type.Bool:
      return (data.values[at >> 3] >> (at & 7)) & 1 ? 'true' : 'false';
    case Type.Utf8:
    case Type.Binary:
      return utf8.decode(data.values.subarray(data.valueOffsets[at], data.valueOffsets[at + 1]));
    case Type.LargeUtf8:
      return utf8.decode(data.values.subarray(Number(data.valueOffsets[at]), Number(data.valueOffsets[at + 1])));
  }
  throw new Error(`arrow type ${data.type} not handled`);
}

async function readArrowNested(path) {
  const pw = await import('parquet-wasm');
  const { tableFromIPC, Type } = await import('apache-arrow');
  const buf = readFileSync(path);
  const pf = await pw.ParquetFile.fromFile(new Blob([buf]));
  const md = pf.metadata();
  const all = tableFromIPC(pw.readParquet(new Uint8Array(buf)).intoIPCStream());
  const schema = all.schema.fields.map((f) => ({ name: f.name, arrow: String(f.type), nullable: f.nullable }));
  const rowGroups = [];
  for (let i = 0; i < md.numRowGroups(); i++) {
    const rg = md.rowGroup(i);
    const n = rg.numRows();
    const rows = [];
    if (n > 0) {
      const t = tableFromIPC(pw.readParquet(new Uint8Array(buf), { rowGroups: [i] }).intoIPCStream());
      const cols = t.schema.fields.map((_, j) => {
        const out = [];
        for (const data of t.getChildAt(j).data) {
          for (let k = 0; k < data.length; k++) out.push(arrowValue(data, k, Type));
        }
        return out;
      });
      for (let r = 0; r < t.numRows; r++) rows.push(cols.map((c) => c[r]));
    }
    rowGroups.push({
      numRows: n,
      columns: rg.columns().map((c) => ({
        path: c.columnPath(),
        encodings: c.encodings().map((e) => arrowEncodings[e] ?? String(e)),
        codec: arrowCodecs[c.compression()] ?? String(c.compression()),
        numValues: c.numValues(),
      })),
      rows,
    });
  }
  return { path, numRows: md.fileMetadata().numRows(), schema, rowGroups };
}

const arrowEncodings = [
  'PLAIN', 'PLAIN_DICTIONARY', 'RLE', 'BIT_PACKED', 'DELTA_BINARY_PACKED',
  'DELTA_LENGTH_BYTE_ARRAY', 'DELTA_BYTE_ARRAY', 'RLE_DICTIONARY', 'BYTE_STREAM_SPLIT',
];
const arrowCodecs = ['UNCOMPRESSED', 'SNAPPY', 'GZIP', 'BROTLI', 'LZ4', 'ZSTD', 'LZ4_RAW', 'LZO'];

async function readArrow(path) {
  const pw = await import('parquet-wasm');
  const { tableFromIPC } = await import('apache-arrow');
  const buf = readFileSync(path);
  const pf = await pw.ParquetFile.fromFile(new Blob([buf]));
  const md = pf.metadata();
  const all = tableFromIPC(pw.readParquet(new Uint8Array(buf)).intoIPCStream());
  const schema = all.schema.fields.map((f) => ({ name: f.name, arrow: String(f.type), nullable: f.nullable }));
  const rowGroups = [];
  for (let i = 0; i < md.numRowGroups(); i++) {
    const rg = md.rowGroup(i);
    const n = rg.numRows();
    let rows = [];
    if (n > 0) {
      const t = tableFromIPC(pw.readParquet(new Uint8Array(buf), { rowGroups: [i] }).intoIPCStream());
      rows = arrowRows(t);
    }
    rowGroups.push({
      numRows: n,
      columns: rg.columns().map((c) => ({
        path: c.columnPath(),
        encodings: c.encodings().map((e) => arrowEncodings[e] ?? String(e)),
        codec: arrowCodecs[c.compression()] ?? String(c.compression()),
        numValues: c.numValues(),
      })),
      rows,
    });
  }
  return { path, numRows: md.fileMetadata().numRows(), createdBy: md.fileMetadata().createdBy() ?? null, schema, rowGroups };
}

// arrowRows reads a table's values column by column from the Arrow
// buffers: timestamps as their raw integers, so no unit conversion of the
// JavaScript bindings can hide a wrong unit.
function arrowRows(t) {
  const cols = t.schema.fields.map((f, j) => {
    const vec = t.getChildAt(j);
    const type = String(f.type);
    const out = [];
    for (const data of vec.data) {
      for (let k = 0; k < data.length; k++) {
        if (!data.getValid(k)) {
          out.push(null);
          continue;
        }
        if (type.startsWith('Timestamp')) {
          const raw = data.values[data.offset + k];
          out.push(timestampMicros(BigInt(raw), type));
        } else if (type === 'Float64' || type === 'Float32') {
          out.push(canonDouble(vec.get(out.length)));
        } else {
          out.push(canon(vec.get(out.length)));
        }
      }
    }
    return out;
  });
  const rows = [];
  for (let r = 0; r < t.numRows; r++) rows.push(cols.map((c) => c[r]));
  return rows;
}

function timestampMicros(raw, type) {
  if (type.includes('MILLISECOND')) return (raw * 1000n).toString();
  if (type.includes('NANOSECOND')) return (raw / 1000n).toString();
  if (type.includes('MICROSECOND')) return raw.toString();
  return (raw * 1000000n).toString(); // SECOND
}

async function main() {
  const [reader, ...files] = process.argv.slice(2);
  const read = {
    hyparquet: readHyparquet,
    arrow: readArrow,
    'hyparquet-nested': readHyparquetNested,
    'arrow-nested': readArrowNested,
  }[reader];
  if (!read || files.length === 0) {
    process.stderr.write('usage: node read.mjs hyparquet|arrow|hyparquet-nested|arrow-nested FILE...\n');
    process.exit(2);
  }
  const out = [];
  for (const f of files) {
    try {
      out.push(await read(f));
    } catch (err) {
      out.push({ path: f, error: String(err && err.message ? err.message : err) });
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
