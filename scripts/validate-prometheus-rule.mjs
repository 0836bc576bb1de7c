#!/usr/bin/env node
// Validates PrometheusRule resources against the schema of the Prometheus Operator's CRD, as shipped
// (compiled) in @kubernetes-models/prometheus-operator (npm). kubernetes-validate knows only the
// built-in kinds, hence this. A CRD schema leaves unknown fields to the API server's pruning, so the
// test also runs promtool on the rule groups.
//   K8S_MODELS_NODE_MODULES=.cache/deploy-tools/k8s-models/node_modules node scripts/validate-prometheus-rule.mjs < docs.json
// stdin: a JSON array of resources. Prints one JSON line [{name, error}] (error null when valid); exit 1 on any error.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.resolve(process.env.K8S_MODELS_NODE_MODULES || path.join(here, '..', '.cache', 'deploy-tools', 'k8s-models', 'node_modules'));
const file = path.join(modules, '@kubernetes-models', 'prometheus-operator', 'monitoring.coreos.com', 'v1', 'PrometheusRule.js');
const { PrometheusRule } = await import(pathToFileURL(file).href);

const docs = JSON.parse(fs.readFileSync(0, 'utf8'));
const results = docs.map((doc) => {
  try {
    if (doc.apiVersion !== PrometheusRule.apiVersion || doc.kind !== PrometheusRule.kind) {
      throw new Error(`not a ${PrometheusRule.apiVersion} ${PrometheusRule.kind}: ${doc.apiVersion} ${doc.kind}`);
    }
    new PrometheusRule(doc).validate();
    return { name: doc.metadata?.name ?? null, error: null };
  } catch (e) {
    return { name: doc.metadata?.name ?? null, error: String(e.message || e) };
  }
});
console.log(JSON.stringify(results));
process.exit(results.some((r) => r.error) ? 1 : 0);
