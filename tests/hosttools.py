"""Drive a real ComfyUI for the host tests: install the pack, start the server, talk HTTP.

The server runs from ``COMFYUI_DIR`` with ``COMFYUI_PYTHON`` on 127.0.0.1 and a free port, with
a temporary base folder (custom_nodes/ with this repository linked in, input/, output/, temp/,
user/, models/), and the Wav2Lip checkpoint reached through an extra_model_paths.yaml, the way
users keep models outside ComfyUI. Only the standard library is used on this side.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACK_FOLDER = "comfyui-resync"


class HostError(RuntimeError):
    """The host did not start or answered something unexpected."""


def ensure_pack_installed(python: str) -> str:
    """``pip install -e`` this repository into the host's environment unless it already is."""
    probe = subprocess.run(
        [python, "-c", "import lipsync, os; print(os.path.dirname(os.path.dirname(lipsync.__file__)))"],
        capture_output=True, text=True, cwd="/",
    )
    if probe.returncode == 0 and Path(probe.stdout.strip()).resolve() == REPO.resolve():
        return "already installed"
    result = subprocess.run([python, "-m", "pip", "install", "-q", "-e", str(REPO)], capture_output=True, text=True)
    if result.returncode != 0:
        raise HostError(f"pip install -e {REPO} failed:\n{result.stderr[-3000:]}")
    return "installed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_base(base: Path, checkpoint: Path) -> Path:
    """The host's base folder, and an extra_model_paths.yaml whose wav2lip folder holds the
    checkpoint (a symlink) and whose musetalk folder is the MuseTalk fixture's models (when the
    shared fixtures have it). Returns the yaml's path."""
    for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO, target_is_directory=True)
    shelf = base / "model_shelf" / "lipsync"
    shelf.mkdir(parents=True)
    (shelf / checkpoint.name).symlink_to(checkpoint)
    folders = "  wav2lip: lipsync\n"
    musetalk = checkpoint.parents[1] / "musetalk_reference" / "models"
    if musetalk.is_dir():  # the MuseTalk fixture's layout, as models/musetalk/{musetalkV15,sd-vae,whisper}
        (base / "model_shelf" / "musetalk").symlink_to(musetalk, target_is_directory=True)
        folders += "  musetalk: musetalk\n"
    config = base / "extra_model_paths.yaml"
    config.write_text(f"resync_test:\n  base_path: {base / 'model_shelf'}\n{folders}")
    return config


@dataclass
class Host:
    url: str
    base: Path
    process: subprocess.Popen
    log: Path

    # --- HTTP

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except json.JSONDecodeError:
                return e.code, raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise HostError(f"GET {path}: HTTP {status}: {body}")
        return body

    def submit(self, prompt: dict, extra_data: dict | None = None) -> tuple[int, Any]:
        """POST /prompt; (200, prompt_id) or (HTTP status, the host's error answer). The browser
        sends the UI workflow as ``extra_data={"extra_pnginfo": {"workflow": ...}}``."""
        body_out = {"prompt": prompt, "client_id": uuid.uuid4().hex, "extra_data": extra_data or {}}
        status, body = self.request("POST", "/prompt", body_out)
        return (status, body["prompt_id"]) if status == 200 else (status, body)

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        """The /history entry of ``prompt_id`` once it has finished (success, error or interrupt)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history:
                return history[prompt_id]
            self.check_alive()
            time.sleep(0.25)
        raise HostError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def run(self, prompt: dict, timeout: float = 300) -> dict:
        status, answer = self.submit(prompt)
        if status != 200:
            raise HostError(f"the host refused the prompt (HTTP {status}): {json.dumps(answer)[:2000]}")
        return self.wait(answer, timeout)

    def running(self, prompt_id: str) -> bool:
        queue = self.get("/queue")
        return any(item[1] == prompt_id for item in queue.get("queue_running", []))

    def interrupt(self, prompt_id: str) -> None:
        self.request("POST", "/interrupt", {"prompt_id": prompt_id})

    # --- lifecycle

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise HostError(f"ComfyUI exited ({self.process.returncode}):\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_host(comfy_dir: Path, python: str, base: Path, extra_config: Path, startup_timeout: float = 300) -> Host:
    """Start ComfyUI on a free loopback port over ``base`` and wait until it answers."""
    port = free_port()
    log = base / "host.log"
    command = [
        python, "-u", "main.py", "--cpu", "--disable-api-nodes", "--disable-auto-launch",
        "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
        "--extra-model-paths-config", str(extra_config), "--database-url", "sqlite:///:memory:",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=comfy_dir, stdout=out, stderr=subprocess.STDOUT)
    host = Host(f"http://127.0.0.1:{port}", base, process, log)
    end = time.monotonic() + startup_timeout
    while time.monotonic() < end:
        host.check_alive()
        try:
            if host.request("GET", "/system_stats", timeout=2)[0] == 200:
                return host
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    host.stop()
    raise HostError(f"ComfyUI did not answer within {startup_timeout:.0f} s:\n{host.log_tail()}")


def output_files(entry: dict) -> list[dict]:
    """The files a finished prompt's nodes reported (filename, subfolder, type)."""
    found = []
    for node_output in (entry.get("outputs") or {}).values():
        for items in node_output.values():
            if isinstance(items, list):
                found += [it for it in items if isinstance(it, dict) and "filename" in it]
    return found


def messages(entry: dict, kind: str) -> list[dict]:
    return [data for name, data in entry.get("status", {}).get("messages", []) if name == kind]
