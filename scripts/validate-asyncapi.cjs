#!/usr/bin/env node
// Validates an AsyncAPI document with the AsyncAPI project's own parser (@asyncapi/parser) and its
// Avro schema parser (@asyncapi/avro-schema-parser). @asyncapi/parser 3.6 validates a v3 document
// against the AsyncAPI JSON schema (which includes the Avro schema shape) but its custom-format rule
// only looks at v2-style message.schemaFormat, so the Avro parser's own validation (avsc
// Type.forSchema) is also run here on every v3 multi-format payload.
//   ASYNCAPI_NODE_MODULES=.cache/deploy-tools/asyncapi/node_modules node scripts/validate-asyncapi.cjs doc.json
// Prints one JSON line {errors, warnings, channels, operations, messages, diagnostics}; exit 1 on any error.
'use strict';
const fs = require('fs');
const path = require('path');

const modules = path.resolve(process.env.ASYNCAPI_NODE_MODULES || path.join(__dirname, '..', '.cache', 'deploy-tools', 'asyncapi', 'node_modules'));
const { Parser, DiagnosticSeverity } = require(path.join(modules, '@asyncapi', 'parser'));
const { AvroSchemaParser } = require(path.join(modules, '@asyncapi', 'avro-schema-parser'));

async function main() {
  const file = process.argv[2];
  const parser = new Parser();
  parser.registerSchemaParser(AvroSchemaParser());
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, 'utf8'), { source: path.resolve(file) });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  const avro = AvroSchemaParser();
  const raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  let avroPayloads = 0;
  for (const [id, msg] of Object.entries((raw.components || {}).messages || {})) {
    const p = msg.payload;
    if (p && typeof p.schemaFormat === 'string' && p.schemaFormat.startsWith('application/vnd.apache.avro')) {
      avroPayloads += 1;
      const path = ['components', 'messages', id, 'payload', 'schema'];
      for (const e of await avro.validate({ data: p.schema, path, schemaFormat: p.schemaFormat, meta: {} })) {
        errors.push({ severity: DiagnosticSeverity.Error, code: 'avro-schema', message: e.message, path: path });
      }
    }
  }
  const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
  const out = {
    errors: errors.length,
    warnings: warnings.length,
    channels: document ? document.channels().length : 0,
    operations: document ? document.operations().length : 0,
    messages: document ? document.allMessages().length : 0,
    version: document ? document.version() : null,
    avroPayloads,
    diagnostics: [...errors, ...diagnostics].slice(0, 50).map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: (d.path || []).join('/') })),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(errors.length === 0 && document ? 0 : 1);
}
main().catch((e) => { console.error(e); process.exit(2); });
