// Runs one SQL statement in an in-memory DuckDB and prints the result rows as
// a JSON array of objects, so tests in any language can read Parquet output
// back with an independent reader.
//
//   node query.mjs "SELECT * FROM read_parquet('out/**/*.parquet')"
//
// BigInts become numbers when they are exact in a double and strings
// otherwise; timestamps become ISO 8601 strings with microseconds in UTC.
// Nested values become JSON: a STRUCT an object, a LIST an array, a MAP an
// array of {"key": …, "value": …} in the file's order.
import {
  DuckDBInstance,
  DuckDBListValue,
  DuckDBMapValue,
  DuckDBStructValue,
  DuckDBTimestampValue,
  DuckDBTimestampTZValue,
} from '@duckdb/node-api';

function isoFromMicros(micros) {
  const ms = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const frac = ((micros % 1000000n) + 1000000n) % 1000000n;
  const base = new Date(Number(ms)).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return base.slice(0, 19) + '.' + frac.toString().padStart(6, '0') + 'Z';
}

function toJSON(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof DuckDBTimestampValue || v instanceof DuckDBTimestampTZValue) {
    return isoFromMicros(v.micros);
  }
  if (v instanceof DuckDBListValue) return v.items.map(toJSON);
  if (v instanceof DuckDBStructValue) {
    const o = {};
    for (const [k, x] of Object.entries(v.entries)) o[k] = toJSON(x);
    return o;
  }
  if (v instanceof DuckDBMapValue) return v.entries.map((e) => ({ key: toJSON(e.key), value: toJSON(e.value) }));
  return v.toString();
}

async function main() {
  const sql = process.argv[2];
  if (!sql) {
    process.stderr.write('usage: node query.mjs "<SQL>"\n');
    process.exit(2);
  }
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  const reader = await conn.runAndReadAll(sql);
  const rows = reader.getRowObjects().map((row) => {
    const out = {};
    for (const [k, v] of Object.entries(row)) out[k] = toJSON(v);
    return out;
  });
  process.stdout.write(JSON.stringify(rows) + '\n');
  conn.closeSync();
  instance.closeSync();
}

main().catch((err) => {
  process.stderr.write(String(err && err.message ? err.message : err) + '\n');
  process.exit(1);
});
