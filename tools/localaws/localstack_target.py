"""LocalStack as the emulator of the local stack (`EMULATOR=localstack`).

The launcher starts LocalStack's community runtime in host mode (no Docker, no auth token) from
.venv-localstack (scripts/localstack.sh install), as a child process, then provisions
infra/template.yaml into it with the same provisioner as the moto stack (target "localstack").
What differs from the moto stack:

- Lambda: LocalStack's own Lambda service, with the project's runtime executor plugin
  (tools/localstack/executor, `LAMBDA_RUNTIME_EXECUTOR=localaws-process`) running each
  function's real binary; the map function -> binary is the file `binaries.json` in the state
  directory (the provisioner's `register_binary`).
- SQS and DynamoDB-stream event source mappings, EventBridge targets and `Schedule` rules are
  LocalStack's own (no pollers or timers of ours).
- API Gateway v2 is not in LocalStack's community edition: the project's HTTP and WebSocket
  gateways (http_api.py, websocket_api.py) serve the template's APIs and invoke the functions
  through LocalStack's Lambda `Invoke` API.

Settings: see `localstack_env` below; LocalStack's state goes to `<state>/localstack/`.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("localaws.localstack")

ACCOUNT_ID = "000000000000"  # LocalStack's default account (access key "test")
EXECUTOR_PLUGIN = "localaws-process"
_PR_SET_PDEATHSIG = 1


def localstack_env(*, repo: Path, state_dir: Path, port: int, region: str, bin_dir: Path,
                   binaries_file: Path) -> dict[str, str]:
    """LocalStack's environment (the settings verified on this machine kind, see
    tools/localaws/README.md "LocalStack")."""
    fs_root = state_dir / "localstack" / "fs"
    libs = fs_root / "var" / "lib" / "localstack" / "lib"
    libs.parent.mkdir(parents=True, exist_ok=True)
    seeded = repo / ".localstack" / "lib"
    if not (seeded / "dynamodb-local" / "2" / "DynamoDBLocal.jar").is_file():
        raise RuntimeError(f"{seeded} is not seeded: run scripts/localstack.sh install")
    if libs.is_symlink() or not libs.exists():
        libs.unlink(missing_ok=True)
        libs.symlink_to(seeded, target_is_directory=True)
    tmp = state_dir / "localstack" / "tmp"
    config = state_dir / "localstack" / "config"
    for d in (tmp, config):
        d.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env.update({
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "SQS_ENDPOINT_STRATEGY": "path",  # else queue URLs name a host that does not resolve
        "OVERRIDE_IN_DOCKER": "0",  # these machines have /.dockerenv
        "FILESYSTEM_ROOT": str(fs_root),
        "TMPDIR": str(tmp),
        "CONFIG_DIR": str(config),
        "DNS_ADDRESS": "0",
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "PROVIDER_OVERRIDE_DYNAMODB": "v2",  # DynamoDB Local's own streams (no kinesis-local)
        "DYNAMODB_IN_MEMORY": "1",
        "LAMBDA_RUNTIME_EXECUTOR": EXECUTOR_PLUGIN,
        # Event source mappings back off to 10 s between empty polls by default; Lambda's
        # pollers long-poll SQS and read streams about every second: stay close to that.
        "LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC":
            os.environ.get("LOCALSTACK_ESM_MAX_EMPTY_BACKOFF", "1"),
        "LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_ERROR_SEC":
            os.environ.get("LOCALSTACK_ESM_MAX_ERROR_BACKOFF", "5"),
        # The wait between two polls of a mapping. The stream poller reads at most BatchSize
        # (100) records of one shard per poll, filters them afterwards, and the table's stream
        # carries every write (outbox entries are a small part of it): at the default 1 s the
        # relay fell behind during the score tests until a committed event took over 90 s to
        # reach the bus. Lambda reads each shard four times a second, up to 1,000 records a
        # read. (SQS mappings long-poll, so for them this only shortens a backlog.)
        "LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC":
            os.environ.get("LOCALSTACK_ESM_POLL_INTERVAL", "0.1"),
        "AWS_REGION": region,
        # read by the executor plugin (tools/localstack/executor)
        "PYTHONPATH": str(repo / "tools"),
        "CLANWAR_BIN_DIR": str(bin_dir),
        "LOCALAWS_STATE_DIR": str(state_dir),
        "LOCALAWS_BINARIES_FILE": str(binaries_file),
        "LOCALAWS_WORKDIR": str(repo),
    })
    return env


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalStack:
    """The LocalStack child process."""

    def __init__(self, *, repo: Path, state_dir: Path, endpoint: str, port: int, region: str,
                 bin_dir: Path):
        self.repo = repo
        self.state_dir = state_dir
        self.endpoint = endpoint
        self.port = port
        self.region = region
        self.bin_dir = bin_dir
        self.binaries_file = state_dir / "binaries.json"
        self.binaries: dict[str, str] = {}
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._s3_tmp_existed = Path("/tmp/localstack-s3-storage").exists()

    def register_binary(self, function_name: str, binary: str) -> None:
        """The provisioner's callback: function -> binary, for the executor plugin."""
        with self._lock:
            self.binaries[function_name] = binary
            tmp = self.binaries_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.binaries, indent=2) + "\n", encoding="utf-8")
            tmp.replace(self.binaries_file)

    def start(self, timeout: float) -> None:
        python = self.repo / ".venv-localstack" / "bin" / "python"
        if not python.is_file():
            raise RuntimeError(f"{python} is missing: run scripts/localstack.sh install")
        self.binaries_file.unlink(missing_ok=True)
        self.binaries_file.write_text("{}\n", encoding="utf-8")
        env = localstack_env(repo=self.repo, state_dir=self.state_dir, port=self.port,
                             region=self.region, bin_dir=self.bin_dir,
                             binaries_file=self.binaries_file)
        log_file = open(self.state_dir / "localstack.log", "w", encoding="utf-8")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"], env=env, cwd=self.repo,
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log_file.close()
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"LocalStack exited with {self.process.returncode} during "
                                   f"start; see {self.state_dir / 'localstack.log'}")
            if self._ready():
                log.info("LocalStack ready on %s in %.1f s (pid %s)", self.endpoint,
                         time.monotonic() - started, self.process.pid)
                return
            time.sleep(0.2)
        raise RuntimeError(f"LocalStack not ready after {timeout:.0f} s; see "
                           f"{self.state_dir / 'localstack.log'}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_localstack/init/ready",
                                        timeout=2) as response:
                return bool(json.loads(response.read() or b"{}").get("completed"))
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            # DynamoDB Local runs in a session of its own: remember LocalStack's descendants,
            # so none outlives it even if it has to be killed.
            children = _descendants(proc.pid)
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("LocalStack did not stop in 15 s: killing it")
                proc.kill()
                proc.wait()
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # LocalStack's S3 provider writes here whatever its settings say; only remove it if
        # this run created it (another LocalStack on the machine may be using it).
        s3_tmp = Path("/tmp/localstack-s3-storage")
        if not self._s3_tmp_existed and s3_tmp.is_dir():
            subprocess.run(["rm", "-rf", str(s3_tmp)], check=False)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def lambda_invoker(endpoint: str, region: str) -> Callable[[str, dict], tuple[str, bool]]:
    """Invokes a function as API Gateway does (synchronously, through Lambda's Invoke API):
    (output, errored). For the local HTTP and WebSocket gateways."""
    import boto3
    from botocore.config import Config

    client = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=region,
    ).client("lambda", endpoint_url=endpoint, config=Config(
        read_timeout=905, connect_timeout=5, retries={"max_attempts": 1},
        max_pool_connections=64,
    ))

    def invoke(function_arn: str, event: dict) -> tuple[str, bool]:
        try:
            response = client.invoke(FunctionName=function_arn,
                                     Payload=json.dumps(event).encode("utf-8"))
        except Exception as exc:  # unknown function, LocalStack down, ...
            log.error("cannot invoke %s: %s", function_arn, exc)
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}), True
        return response["Payload"].read().decode("utf-8", "replace"), \
            bool(response.get("FunctionError"))

    return invoke


class LocalApiGatewayV2:
    """Stands in for the apigatewayv2 client on LocalStack, whose community edition has no API
    Gateway v2: the provisioner's calls only need ids back (the local gateways serve the APIs)."""

    def __init__(self) -> None:
        self._n = 0

    def _id(self) -> str:
        self._n += 1
        return f"local{self._n:05d}"

    def create_api(self, **_: Any) -> dict:
        return {"ApiId": self._id()}

    def create_integration(self, **_: Any) -> dict:
        return {"IntegrationId": self._id()}

    def create_route(self, **_: Any) -> dict:
        return {"RouteId": self._id()}

    def create_authorizer(self, **_: Any) -> dict:
        return {"AuthorizerId": self._id()}

    def create_stage(self, **kwargs: Any) -> dict:
        return {"StageName": kwargs.get("StageName")}
