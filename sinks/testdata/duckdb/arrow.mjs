// Reads Arrow IPC files with Apache Arrow JS and prints JSON:
// {"files": [{"fields": [{"name", "type"}], "metadata": {...},
//             "rows": [{"id", "width", "height", "embedding": [flat floats]}]}]}.
// Used by the sinks tests as an independent Arrow reader.
import { readFileSync } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';

const flat = (v) =>
  v !== null && typeof v === 'object' && typeof v[Symbol.iterator] === 'function'
    ? [...v].flatMap(flat)
    : [v];

const files = process.argv.slice(2).map((path) => {
  const t = tableFromIPC(readFileSync(path));
  const names = t.schema.fields.map((f) => f.name);
  const rows = [];
  for (let i = 0; i < t.numRows; i++) {
    const r = {};
    for (const n of names) {
      const v = t.getChild(n).get(i);
      r[n] = n === 'embedding' ? flat(v) : v;
    }
    rows.push(r);
  }
  return {
    fields: t.schema.fields.map((f) => ({ name: f.name, type: String(f.type), nullable: f.nullable })),
    metadata: Object.fromEntries(t.schema.metadata),
    rows,
  };
});
process.stdout.write(JSON.stringify({ files }));
