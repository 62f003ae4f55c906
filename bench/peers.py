"""The peers of `make bench-peers`: other gateways run on the same mock, pinned like the router
(CPU 1), under the same load. LiteLLM proxy from PyPI (bench/.venv-litellm) and Portkey's AI
gateway from npm (bench/portkey/node_modules, versions pinned in bench/requirements-litellm.txt
and bench/portkey/package-lock.json; bench/run.sh installs both). Standard library only."""

import json
import os
import subprocess

from harness import BENCH, MOCK_ADDR, OUT, ROUTER_MODEL, log, pinned, wait_http

LITELLM_VENV = os.path.join(BENCH, ".venv-litellm")
LITELLM_ADDR = "127.0.0.1:18400"
# LiteLLM refuses to start without a master key; with one (and no database) it checks it per request.
LITELLM_KEY = "sk-litellm-bench-0123456789abcdef"
PORTKEY_DIR = os.path.join(BENCH, "portkey")
PORTKEY_PORT = 18410
# The upstream key the peers send to the mock (which ignores it).
UPSTREAM_KEY = "sk-bench-upstream"

# The peers in the order their rows and columns appear.
NAMES = ("litellm", "portkey")
LABELS = {"litellm": "LiteLLM", "portkey": "Portkey"}


def url(name):
    """The chat completions URL of a peer."""
    addr = {"litellm": LITELLM_ADDR, "portkey": f"127.0.0.1:{PORTKEY_PORT}"}[name]
    return f"http://{addr}/v1/chat/completions"


def headers(name):
    """The request headers a peer needs besides the content type: LiteLLM its master key; Portkey
    (which has no keys of its own) the provider, the mock as a custom host and the upstream key."""
    if name == "litellm":
        return [f"Authorization: Bearer {LITELLM_KEY}"]
    return ["x-portkey-provider: openai", f"x-portkey-custom-host: http://{MOCK_ADDR}/v1",
            f"Authorization: Bearer {UPSTREAM_KEY}"]


def start(name, procs):
    """Starts a peer and waits until it serves: `(process or None, the note on how it runs)`."""
    return {"litellm": start_litellm, "portkey": start_portkey}[name](procs)


def start_litellm(procs):
    exe = os.path.join(LITELLM_VENV, "bin", "litellm")
    if not os.path.exists(exe):
        return None, "not installed (bench/.venv-litellm/bin/litellm missing); see `make bench-peers`"
    version = subprocess.run([os.path.join(LITELLM_VENV, "bin", "python"), "-c",
                              "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True).stdout.strip()
    cfg = os.path.join(OUT, "litellm.yaml")
    with open(cfg, "w") as f:
        f.write(f"""model_list:
  - model_name: {ROUTER_MODEL}
    litellm_params:
      model: openai/bench-model
      api_base: http://{MOCK_ADDR}/v1
      api_key: {UPSTREAM_KEY}
litellm_settings:
  turn_off_message_logging: true
  telemetry: false
general_settings:
  master_key: {LITELLM_KEY}
""")
    env = dict(os.environ, LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False")
    host, port = LITELLM_ADDR.split(":")
    p = procs.start(pinned(1, [exe, "--config", cfg, "--host", host, "--port", port, "--num_workers", "1"]),
                    "litellm.log", env=env)
    if not wait_http(f"http://{LITELLM_ADDR}/health/liveliness", 120, proc=p):
        procs.stop(p)
        return None, "did not become ready within 120 s; see bench/out/litellm.log"
    log(f"LiteLLM {version} ready")
    return p, (f"litellm[proxy] {version} from PyPI in bench/.venv-litellm, one worker (`--num_workers 1`), "
               "`turn_off_message_logging: true`, `telemetry: false`, `LITELLM_LOG=ERROR`, a master key "
               "(it refuses to start without one) and no database, pinned to CPU 1")


def start_portkey(procs):
    pkg = os.path.join(PORTKEY_DIR, "node_modules", "@portkey-ai", "gateway")
    server = os.path.join(pkg, "build", "start-server.js")
    if not os.path.exists(server):
        return None, "not installed (bench/portkey/node_modules missing); see `make bench-peers`"
    with open(os.path.join(pkg, "package.json")) as f:
        version = json.load(f)["version"]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    env = dict(os.environ, NODE_ENV="production")
    p = procs.start(pinned(1, ["node", server, f"--port={PORTKEY_PORT}", "--headless"]), "portkey.log", env=env)
    if not wait_http(f"http://127.0.0.1:{PORTKEY_PORT}/", 60, proc=p):
        procs.stop(p)
        return None, "did not become ready within 60 s; see bench/out/portkey.log"
    log(f"Portkey gateway {version} ready")
    return p, (f"@portkey-ai/gateway {version} from npm in bench/portkey (node {node}, one process, "
               "`--headless`, `NODE_ENV=production`), the mock named per request (`x-portkey-provider: openai`, "
               "`x-portkey-custom-host`); it has no keys, budgets or rate limits of its own; pinned to CPU 1")
