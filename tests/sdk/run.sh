#!/usr/bin/env bash
# Drives the official `openai`, `anthropic`, `google-genai` and `boto3` Python SDKs (and langchain-openai) against a real asbru
# gateway in front of the bundled mock provider: plain, streaming and tool-call requests, every
# wire, every direction.
# Usage: tests/sdk/run.sh [path/to/asbru]   (default: target/debug/asbru, built if missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:-$root/target/debug/asbru}"
[ -x "$bin" ] || (cd "$root" && cargo build --quiet --bin asbru)

venv="$root/target/sdk-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check openai anthropic google-genai langchain-openai boto3

work="$(mktemp -d)"
gateway_pid=""
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

read -r gw_port mock_port tls_port < <("$venv/bin/python" - <<'PY'
import socket
ports = []
socks = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ports.append(s.getsockname()[1]); socks.append(s)
print(*ports)
PY
)

# A CA made for this run, and a certificate it signs for the TLS listener.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=asbru sdk test CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
  -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/san.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/san.ext" -out "$work/tls.pem" 2>/dev/null

cat > "$work/sdk.yaml" <<YAML
config_store: {enabled: false}
server:
  threads: 2
  tls: {cert_file: "$work/tls.pem", key_file: "$work/tls.key"}
  listeners:
    - {address: "127.0.0.1:$gw_port"}
    - {address: "127.0.0.1:$tls_port", tls: true}
mock: {listen: "127.0.0.1:$mock_port", chunks: 4}
providers:
  openai:
    keys: [{name: sdk, value: sk-sdk-openai}]
    network_config: {base_url: "http://127.0.0.1:$mock_port"}
  anthropic:
    keys: [{name: sdk, value: sk-sdk-anthropic}]
    network_config: {base_url: "http://127.0.0.1:$mock_port"}
  gemini:
    keys: [{name: sdk, value: sk-sdk-gemini}]
    network_config: {base_url: "http://127.0.0.1:$mock_port"}
  cohere:
    keys: [{name: sdk, value: sk-sdk-cohere}]
    network_config: {base_url: "http://127.0.0.1:$mock_port"}
  bedrock:
    # The mock's Bedrock runtime checks the SigV4 signature made with these credentials.
    keys: [{name: sdk, value: "", bedrock_key_config: {access_key: AKIDMOCKBEDROCK, secret_key: "mock/bedrock+secret/key", region: us-east-1}}]
    network_config: {base_url: "http://127.0.0.1:$mock_port"}
YAML

"$bin" serve --config "$work/sdk.yaml" > "$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 1 200); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$gw_port/health', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.05
done

if ! ASBRU_URL="http://127.0.0.1:$gw_port" ASBRU_TLS_URL="https://localhost:$tls_port" ASBRU_TLS_CA="$work/ca.pem" "$venv/bin/python" "$root/tests/sdk/test_sdks.py"; then
  echo "--- gateway log"; cat "$work/gateway.log"
  exit 1
fi
