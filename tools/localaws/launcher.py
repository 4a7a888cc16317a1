"""The local AWS stack in one process: moto server + Lambda bridge + resources from the template.

    .venv/bin/python tools/localaws/launcher.py            (or: scripts/localaws.sh up)

Environment:
    AWS_ENDPOINT_URL        where to serve (default http://127.0.0.1:4566)
    AWS_REGION              region of the local stack (default us-east-1)
    CLANWAR_STAGE           template parameter Stage (default: the template's default)
    CLANWAR_BIN_DIR         directory of the Lambda binaries (default target/debug, or
                            $CARGO_TARGET_DIR/debug)
    LOCALAWS_TEMPLATE       template to provision (default infra/template.yaml)
    LOCALAWS_STATE_DIR      runtime state: ready file, resources.json, logs (default .localaws/)
    LOCALAWS_STACK_NAME     AWS::StackName and prefix of generated names (default clanwar-<Stage>)
    LOCALAWS_POOL_SIZE      warm processes per function (default 2)
    LOCALAWS_SQS_POLL_SECONDS  re-drive interval of SQS event source mappings (default 1)
    LOCALAWS_SCHEDULE_SPEEDUP  divides the period of rate() schedules (default 1: real time)
    LOCALAWS_VERBOSE        1: log every HTTP request moto serves
    EMULATOR                moto (default) or localstack (LocalStack from .venv-localstack, see
                            localstack_target.py and scripts/localstack.sh)
    LOCALAWS_SQS_VISIBILITY_TIMEOUT  caps every queue's VisibilityTimeout (seconds): how soon
                            a failed message is received again (tests on LocalStack)
    CLANWAR_API_PORT        the template's HTTP API, on 127.0.0.1 (default 8080)
    CLANWAR_WS_PORT         the template's WebSocket API, on 127.0.0.1 (default 8081)
    CLANWAR_WS_MGMT_PORT    its @connections management API, on 127.0.0.1 (default 8082)

Prints the local API URLs and then `READY <endpoint>` on stdout once everything is provisioned
and served, and writes <state>/ready and <state>/resources.json. SIGTERM/SIGINT stop every
child process.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

if __package__ in (None, ""):  # run as a script: make `localaws` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localaws.apigw import ApiRegistry, invoke_function
from localaws.cfn_yaml import load_template
from localaws.ddb_lock import local_moto_server_class
from localaws.ddb_streams import StreamMappings
from localaws.lambda_bridge import LambdaBridge
from localaws.provisioner import Provisioner
from localaws.schedules import Scheduler
from localaws.sqs_esm import EsmPoller, install_async_delivery, install_batch_item_failures
from localaws.template import Stack, TemplateError

log = logging.getLogger("localaws")
REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_ENDPOINT = "http://127.0.0.1:4566"


class StartupError(Exception):
    """The stack cannot start; the message says why."""


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).resolve() if value else default


def _bin_dir() -> Path:
    target = _env_path("CARGO_TARGET_DIR", REPO_ROOT / "target")
    return _env_path("CLANWAR_BIN_DIR", target / "debug")


def _host_port(endpoint: str) -> tuple[str, int]:
    url = urlparse(endpoint)
    if url.scheme != "http" or not url.hostname:
        raise StartupError(f"AWS_ENDPOINT_URL must look like http://host:port, got {endpoint!r}")
    return url.hostname, url.port or 80


def _check_port_free(host: str, port: int) -> None:
    """moto's server thread would hang on a bind error, so probe the port first."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug does
    try:
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} on {host} is already in use by another process "
                               f"(see `ss -ltnp 'sport = :{port}'`)") from exc
        raise StartupError(f"cannot bind {host}:{port}: {exc}") from exc
    finally:
        probe.close()


def _start_moto(host: str, port: int):
    # moto's internal clients (Step Functions tasks) call localhost:$MOTO_PORT: set it before
    # moto is imported.
    os.environ["MOTO_PORT"] = str(port)
    server = local_moto_server_class()(ip_address=host, port=port, verbose=False)
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(timeout=15)
    if starter.is_alive():
        raise StartupError(f"moto server did not start on {host}:{port}")
    return server


def _configure_moto(endpoint: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status >= 300:
            raise StartupError(f"moto config rejected: HTTP {response.status}")


def _speedup() -> float:
    value = os.environ.get("LOCALAWS_SCHEDULE_SPEEDUP") or "1"
    try:
        return float(value)
    except ValueError:
        raise StartupError(f"LOCALAWS_SCHEDULE_SPEEDUP={value!r} is not a number") from None


def _optional_int(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    if not value.isdigit():
        raise StartupError(f"{name}={value!r} is not a number of seconds")
    return int(value)


def _parameters(args: argparse.Namespace, template: dict) -> dict[str, str]:
    params = dict(p.split("=", 1) for p in args.param)
    if os.environ.get("CLANWAR_STAGE") and "Stage" in (template.get("Parameters") or {}):
        params.setdefault("Stage", os.environ["CLANWAR_STAGE"])
    return params


def _provision(args: argparse.Namespace, endpoint: str, region: str,
               register_binary: Callable[[str, str], None], apis: ApiRegistry,
               scheduler: Scheduler | None, streams: StreamMappings | None,
               target: str = "moto", account_id: str = ACCOUNT_ID) -> Stack:
    template = load_template(args.template)
    params = _parameters(args, template)
    stack = Stack(template, parameters=params, region=region, account_id=account_id)
    # Stand-in for the deployed stack's name (AWS::StackName, generated resource names).
    stack.stack_name = os.environ.get("LOCALAWS_STACK_NAME") or \
        f"clanwar-{stack.parameters.get('Stage', 'local')}"
    Provisioner(stack, endpoint=endpoint, template_dir=args.template.parent,
                register_binary=register_binary, apis=apis,
                schedules=scheduler, streams=streams, target=target,
                sqs_visibility_cap=_optional_int("LOCALAWS_SQS_VISIBILITY_TIMEOUT")).provision()
    return stack


def _serve_apis(apis: ApiRegistry,
                invoke: Callable[[str, dict], tuple[str, bool]] = invoke_function) -> list:
    """Starts the servers of the template's HTTP and WebSocket APIs (none if it has none)."""
    from localaws.http_api import HttpApiServer
    from localaws.websocket_api import WebSocketApiServer

    servers: list = []
    http, ws = apis.by_protocol("HTTP"), apis.by_protocol("WEBSOCKET")
    try:
        if http is not None:
            servers.append(HttpApiServer(http, apis.host, apis.http_port, invoke))
        if ws is not None:
            servers.append(WebSocketApiServer(ws, apis.host, apis.ws_port, apis.ws_mgmt_port,
                                              invoke))
    except OSError as exc:
        for server in servers:
            server.stop()
        raise StartupError(
            f"cannot serve the template's APIs: {exc} (ports: CLANWAR_API_PORT={apis.http_port}, "
            f"CLANWAR_WS_PORT={apis.ws_port}, CLANWAR_WS_MGMT_PORT={apis.ws_mgmt_port}; "
            "see `ss -ltnp`)") from exc
    for server in servers:
        server.start()
    return servers


def _write_state(state_dir: Path, stack: Stack, endpoint: str, template_path: Path,
                 apis: ApiRegistry) -> None:
    resources = {
        "emulator": os.environ.get("EMULATOR") or "moto",
        "endpoint": endpoint,
        "endpoints": {"aws": endpoint, **apis.urls()},
        "region": stack.region,
        "account_id": stack.account_id,
        "stack_name": stack.stack_name,
        "template": str(template_path),
        "parameters": stack.parameters,
        "resources": {lid: p.to_json() for lid, p in stack.created.items()},
        "outputs": stack.outputs(),
    }
    _write_atomic(state_dir / "resources.json", json.dumps(resources, indent=2) + "\n")
    _write_atomic(state_dir / "ready", f"{endpoint} {os.getpid()}\n")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--template", type=Path,
                        default=_env_path("LOCALAWS_TEMPLATE", REPO_ROOT / "infra/template.yaml"))
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="template parameter override (repeatable)")
    return parser.parse_args(argv)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get("LOCALAWS_VERBOSE") != "1":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        logging.getLogger("botocore").setLevel(logging.WARNING)


def _announce(stack: Stack, endpoint: str, apis: ApiRegistry, where: str) -> None:
    log.info("local stack ready: %d resources from %s (%s)", len(stack.created),
             stack.stack_name, where)
    for name, url in apis.urls().items():
        log.info("%s: %s", name, url)
        print(f"{name.upper()} {url}", flush=True)
    print(f"READY {endpoint}", flush=True)


def main_localstack(args: argparse.Namespace, endpoint: str, region: str, state_dir: Path,
                    stop: threading.Event) -> int:
    """EMULATOR=localstack: LocalStack (child process) + the template + the local gateways."""
    from localaws.localstack_target import ACCOUNT_ID as LOCALSTACK_ACCOUNT
    from localaws.localstack_target import LocalStack, lambda_invoker

    localstack = None
    api_servers: list = []
    try:
        apis = ApiRegistry.from_env()
        host, port = _host_port(endpoint)
        _check_port_free(host, port)
        localstack = LocalStack(repo=REPO_ROOT, state_dir=state_dir, endpoint=endpoint,
                                port=port, region=region, bin_dir=_bin_dir())
        localstack.start(float(os.environ.get("LOCALSTACK_START_TIMEOUT", "60")))
        stack = _provision(args, endpoint, region, localstack.register_binary, apis,
                           None, None, target="localstack", account_id=LOCALSTACK_ACCOUNT)
        api_servers = _serve_apis(apis, lambda_invoker(endpoint, region))
        _write_state(state_dir, stack, endpoint, args.template, apis)
        _announce(stack, endpoint, apis, f"LocalStack, Lambda binaries from {_bin_dir()}")
        while not stop.wait(1.0):
            if localstack.process is not None and localstack.process.poll() is not None:
                log.error("LocalStack exited with %s; see %s", localstack.process.returncode,
                          state_dir / "localstack.log")
                return 1
        log.info("stopping")
        return 0
    except (StartupError, TemplateError, RuntimeError) as exc:
        log.error("%s", exc)
        return 2
    except Exception:
        log.exception("local stack (LocalStack) failed to start")
        return 1
    finally:
        (state_dir / "ready").unlink(missing_ok=True)
        for api_server in api_servers:
            api_server.stop()
        if localstack is not None:
            localstack.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _configure_logging()
    endpoint = os.environ.get("AWS_ENDPOINT_URL", DEFAULT_ENDPOINT).rstrip("/")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    state_dir = _env_path("LOCALAWS_STATE_DIR", REPO_ROOT / ".localaws")
    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("ready", "resources.json"):  # never let a client read a previous run's
        (state_dir / stale).unlink(missing_ok=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    emulator = os.environ.get("EMULATOR") or "moto"
    if emulator == "localstack":
        return main_localstack(args, endpoint, region, state_dir, stop)
    if emulator != "moto":
        log.error("EMULATOR=%s: moto or localstack", emulator)
        return 2

    bridge = LambdaBridge(endpoint=endpoint, region=region, bin_dir=_bin_dir(),
                          workdir=REPO_ROOT, log_dir=state_dir / "logs",
                          pool_size=int(os.environ.get("LOCALAWS_POOL_SIZE", "2")))
    poller = EsmPoller(float(os.environ.get("LOCALAWS_SQS_POLL_SECONDS", "1")))
    server = None
    api_servers: list = []
    scheduler = None
    streams = StreamMappings(invoke_function, region)
    try:
        apis = ApiRegistry.from_env()
        scheduler = Scheduler(invoke_function, _speedup())
        host, port = _host_port(endpoint)
        _check_port_free(host, port)
        server = _start_moto(host, port)
        bridge.install()
        install_batch_item_failures()
        install_async_delivery()
        streams.install()
        _configure_moto(endpoint)
        stack = _provision(args, endpoint, region, bridge.register_binary, apis, scheduler,
                           streams)
        api_servers = _serve_apis(apis)
        poller.start()
        streams.start()
        scheduler.start()
        _write_state(state_dir, stack, endpoint, args.template, apis)
        _announce(stack, endpoint, apis, f"moto, Lambda binaries from {bridge.bin_dir}")
        while not stop.wait(1.0):
            pass
        log.info("stopping")
        return 0
    except (StartupError, TemplateError) as exc:
        log.error("%s", exc)
        return 2
    except Exception:
        log.exception("local stack failed to start")
        return 1
    finally:
        (state_dir / "ready").unlink(missing_ok=True)
        for api_server in api_servers:
            api_server.stop()
        if scheduler is not None:
            scheduler.stop()
        poller.stop()
        streams.stop()
        bridge.shutdown()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
