"""The browser extension (web/): a fast static check of its modules, and the real thing in
headless Chromium against a real ComfyUI (marker ``browser``).

Needs COMFYUI_DIR and COMFYUI_PYTHON (as the host tests) and Debian's /usr/bin/chromium
(``apt-get install chromium``); skipped with the reason otherwise. Chromium is driven through the
DevTools protocol over ``--remote-debugging-pipe`` with the standard library only (no Node, no
Playwright, no websocket package). What a user would do, in order:

1. open the real frontend; the pack's extension ``ReSync.Batch`` is registered;
2. a graph with ReSync Load Wav2Lip Model → ReSync Lip-Sync Batch (videos: talk.mp4);
3. click "Upload audios…" on the node, pick two voices in the file chooser: they land in a new
   folder of the input folder and the node's ``audios`` field points at it;
4. queue the prompt through the UI; the node shows "item 1/2: english.wav", …;
5. the output video appears in the node and plays, with sound (so does the saved video of a
   ReSync Lip-Sync Video node in the same graph);
6. click "Download all (zip)": the zip arrives through the browser's download;
7. a screenshot is kept in tests/artifacts/ (or $RESYNC_ARTIFACTS) and no error came from the pack.

    COMFYUI_DIR=… COMFYUI_PYTHON=… python -m pytest -m browser tests/host/test_browser.py -v -s
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import wave
import zipfile
from pathlib import Path
from typing import Any

import hosttools
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LIPSYNC_SHARED", REPO.parent / "shared"))
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CLIP = SHARED / "media" / "astronaut_closeup_5s_silent.mp4"
VOICE = SHARED / "media" / "speech_piper_16k_5s.wav"
CHECKPOINT = SHARED / "fixtures" / "wav2lip_reference" / "random_wav2lip.pth"
ARTIFACTS = Path(os.environ.get("RESYNC_ARTIFACTS", REPO / "tests" / "artifacts"))
PACK_SCRIPTS = f"/extensions/{hosttools.PACK_FOLDER}/"
MODEL_ID, BATCH_ID, AUDIO_ID, SINGLE_ID = 1, 2, 3, 4
GRAPH = {  # the nodes; their links and values are set through the page's own API (see build_graph)
    "last_node_id": 4, "last_link_id": 0, "links": [], "groups": [], "config": {}, "extra": {}, "version": 0.4,
    "nodes": [
        {"id": MODEL_ID, "type": "ReSyncLoadWav2LipModel", "pos": [30, 60], "size": [330, 110]},
        {"id": BATCH_ID, "type": "ReSyncLipSyncBatch", "pos": [400, 60], "size": [420, 520]},
        {"id": AUDIO_ID, "type": "LoadAudio", "pos": [30, 260], "size": [330, 140]},
        {"id": SINGLE_ID, "type": "ReSyncLipSyncVideo", "pos": [860, 60], "size": [400, 600]},
    ],
}
for _node in GRAPH["nodes"]:
    _node.update(flags={}, order=_node["id"], mode=0, properties={})


class Chromium:
    """Headless Chromium and one page, spoken to over the DevTools pipe (fd 3 in, fd 4 out)."""

    FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--autoplay-policy=no-user-gesture-required", "--remote-debugging-pipe")

    def __init__(self, binary: Path, profile: Path) -> None:
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        def as_fd3_and_fd4() -> None:  # in the child, before exec: the pipe ends become fds 3 and 4
            a, b = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [str(binary), *self.FLAGS, f"--user-data-dir={profile}", "about:blank"], preexec_fn=as_fd3_and_fd4,
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._next, self._replies = 0, {}
        self.events: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.session = ""

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._in, 1 << 16):
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                box = self._replies.pop(message.get("id"), None)
                (box or self.events).put(message)

    def send(self, method: str, params: dict | None = None, *, page: bool = True, timeout: float = 60) -> dict:
        self._next += 1
        box: queue.Queue[dict] = queue.Queue()
        self._replies[self._next] = box
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if page and self.session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        reply = box.get(timeout=timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def open_page(self, width: int = 1400, height: int = 950) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, page=False)["targetId"]
        attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, page=False)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False})

    def js(self, expression: str, timeout: float = 60) -> Any:
        """The value of a JS expression (awaited when it is a promise)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                           timeout=timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS failed: {json.dumps(result['exceptionDetails'])[:2000]}")
        return result["result"].get("value")

    def wait_js(self, expression: str, timeout: float, what: str) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def wait_event(self, method: str, timeout: float, where: Any = lambda params: True) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                event = self.events.get(timeout=max(0.05, end - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(event)
            if event.get("method") == method and where(event["params"]):
                return event["params"]
        raise AssertionError(f"no {method} within {timeout:.0f} s")

    def drain(self) -> list[dict]:
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return self.seen

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, queue.Empty, OSError):
            self.send("Browser.close", page=False, timeout=5)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def write_voices(folder: Path) -> list[Path]:
    """Two 1 s voices cut from the shared speech."""
    folder.mkdir(parents=True, exist_ok=True)
    with wave.open(str(VOICE), "rb") as source:
        params, pcm = source.getparams(), source.readframes(source.getnframes())
    step = params.framerate * params.sampwidth * params.nchannels
    paths = []
    for i, lang in enumerate(("english", "japanese")):
        with wave.open(str(folder / f"{lang}.wav"), "wb") as out:
            out.setparams(params)
            out.writeframes(pcm[i * 2 * step : (i * 2 + 1) * step])
        paths.append(folder / f"{lang}.wav")
    return paths


WEB = REPO / "web"


def test_web_extension_is_small_prefixed_and_side_effect_free() -> None:
    """Fast, no browser: small modules, every top-level name and the extension prefixed, imports
    only from the host's scripts or our own modules, no globals, no console output."""
    files = sorted(WEB.glob("*.js"))
    assert [f.name for f in files] == ["resync_batch.js", "resync_files.js", "resync_upload.js"]
    registered = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) < 300, path.name
        names = re.findall(r"^(?:export )?(?:async )?(?:function|const|let|var|class) (\w+)", text, flags=re.M)
        assert names and all(n.lower().startswith("resync") for n in names), (path.name, names)
        for source in re.findall(r'^import .* from "([^"]+)";', text, flags=re.M):
            host_script = source in ("../../scripts/app.js", "../../scripts/api.js")
            assert host_script or re.fullmatch(r"\./resync_\w+\.js", source), (path.name, source)
        assert not re.search(r"\bwindow\.\w+\s*=|globalThis|console\.|document\.head|localStorage", text), path.name
        registered += re.findall(r'registerExtension\(\{\s*name: "([^"]+)"', text)
    assert registered == ["ReSync.Batch"]


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory):
    comfy_dir, python = os.environ.get("COMFYUI_DIR"), os.environ.get("COMFYUI_PYTHON")
    if not comfy_dir or not python:
        pytest.skip("browser tests need COMFYUI_DIR (a ComfyUI source tree) and COMFYUI_PYTHON (a python that runs it)")
    if not CHROMIUM.is_file():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium), or set CHROMIUM")
    missing = [p for p in (CLIP, VOICE, CHECKPOINT) if not p.is_file()]
    if missing:
        pytest.skip(f"browser tests need the shared media and checkpoint; missing: {', '.join(map(str, missing))}")
    hosttools.ensure_pack_installed(python)
    base = tmp_path_factory.mktemp("comfy_browser")
    config = hosttools.make_base(base, CHECKPOINT)
    shutil.copy(CLIP, base / "input" / "talk.mp4")
    shutil.copy(write_voices(base / "temp" / "voices")[1], base / "input" / "voice_1s.wav")
    settings = base / "user" / "default" / "comfy.settings.json"  # no template dialog, no minimap over the node
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}))
    host = hosttools.start_host(Path(comfy_dir), python, base, config)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def browser(tmp_path: Path):
    chromium = Chromium(CHROMIUM, tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


APP = "window.comfyAPI.app.app"
NODE = f"{APP}.graph.getNodeById({BATCH_ID})"
SINGLE = f"{APP}.graph.getNodeById({SINGLE_ID})"


def build_graph(browser: Chromium) -> None:
    """Model → Lip-Sync Batch (videos: talk.mp4), and Model + Load Audio → Lip-Sync Video (the
    single-job node, whose saved mp4 the host previews too)."""
    browser.js(
        f"(async () => {{ await {APP}.loadGraphData({json.dumps(GRAPH)}); const g = {APP}.graph; "
        f"const ids = [{MODEL_ID}, {BATCH_ID}, {AUDIO_ID}, {SINGLE_ID}]; "
        "const [model, batch, audio, single] = ids.map(i => g.getNodeById(i)); "
        "const set = (node, name, value) => { node.widgets.find(w => w.name === name).value = value; }; "
        "model.connect(0, batch, batch.findInputSlot('model')); "
        "model.connect(0, single, single.findInputSlot('model')); "
        "audio.connect(0, single, single.findInputSlot('audio')); "
        "set(model, 'ckpt_name', 'random_wav2lip.pth'); set(audio, 'audio', 'voice_1s.wav'); "
        "set(batch, 'videos', 'talk.mp4'); set(batch, 'batch_name', 'ReSync/browser'); "
        "set(single, 'video', 'talk.mp4'); set(single, 'filename_prefix', 'ReSync/single'); "
        "window.resyncTestTexts = []; "
        "window.comfyAPI.api.api.addEventListener('progress_text', "
        "e => window.resyncTestTexts.push(e.detail.text)); })()"
    )


def widget_center(browser: Chromium, name: str) -> tuple[float, float]:
    """Where a canvas-drawn widget of the batch node is on the screen."""
    x, y = browser.js(
        f"(() => {{ const n = {NODE}; const w = n.widgets.find(w => w.name === {json.dumps(name)}); "
        f"return {APP}.canvasPosToClientPos([n.pos[0] + n.size[0] / 2, n.pos[1] + (w.last_y ?? w.y) + 10]); }})()"
    )
    return x, y


def fit_graph_in_view(browser: Chromium) -> None:
    browser.js(
        f"(() => {{ const c = {APP}.canvas; const nodes = {APP}.graph.nodes; "
        "const rect = c.canvas.getBoundingClientRect(); "
        "const right = Math.max(...nodes.map(n => n.pos[0] + n.size[0])); "
        "const bottom = Math.max(...nodes.map(n => n.pos[1] + n.size[1])); "
        "const s = Math.min(1, (rect.height - 130) / (bottom - 30), (rect.width - 60) / right); "
        "c.ds.scale = s; c.ds.offset = [20 / s, 100 / s]; c.setDirty(true, true); })()"
    )
    time.sleep(1.0)  # DOM widgets (the videos) follow the canvas on its next frames


def play_preview(browser: Chromium, node: str) -> dict:
    """Play a node's preview video for 2 s: what was shown and heard."""
    return browser.js(
        f"(async () => {{ const v = {node}.videoContainer.querySelector('video'); v.muted = false; "
        "let updates = 0; v.addEventListener('timeupdate', () => updates++); await v.play(); "
        "const frames0 = v.getVideoPlaybackQuality().totalVideoFrames; await new Promise(r => setTimeout(r, 2000)); "
        "const frames = v.getVideoPlaybackQuality().totalVideoFrames - frames0; "
        "return {src: v.src, duration: v.duration, updates, frames, "
        "width: v.videoWidth, height: v.videoHeight, audioBytes: v.webkitAudioDecodedByteCount, paused: v.paused, "
        "muted: v.muted, loop: v.loop, shown: v.getBoundingClientRect().height}; })()"
    )


def pack_errors(events: list[dict]) -> tuple[list[str], list[str]]:
    """(errors from the pack's scripts or naming it, the host's own errors) seen on the page."""
    ours, theirs = [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = json.dumps(details)
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            text = json.dumps(params)
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            text = f"{params['entry']['text']} {params['entry'].get('url', '')}"
        else:
            continue
        (ours if PACK_SCRIPTS in text or "resync" in text.lower() else theirs).append(text[:300])
    return ours, theirs


@pytest.mark.browser
def test_batch_node_uploads_runs_previews_and_downloads_in_the_real_frontend(comfy, browser, tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads),
                                                 "eventsEnabled": True}, page=False)
    browser.open_page()
    browser.send("Page.setInterceptFileChooserDialog", {"enabled": True})
    browser.send("Page.navigate", {"url": comfy.url})
    browser.wait_js(f"!!({APP}?.vueAppReady && {APP}.graph)", 120, "the ComfyUI frontend")

    # 1. the extension registered (its scripts were served from the pack's web/ folder)
    names = browser.js(f"{APP}.extensions.map(e => e.name)")
    assert "ReSync.Batch" in names
    scripts = browser.js("window.comfyAPI.api.api.getExtensions()")  # what the page imported at start
    ours = sorted(s.rsplit("/", 1)[1] for s in scripts if PACK_SCRIPTS in s)
    assert ours == ["resync_batch.js", "resync_files.js", "resync_upload.js"], scripts

    # 2. the graph, with the video (and the single job's voice) already in the input folder
    build_graph(browser)
    fit_graph_in_view(browser)
    widgets = browser.js(f"{NODE}.widgets.map(w => [w.name, w.type])")
    buttons = [["Upload videos…", "button"], ["Upload audios…", "button"], ["Download all (zip)", "button"]]
    assert widgets[-3:] == buttons

    # 3. "Upload audios…": the file chooser opens, two voices go up into a new input folder
    voices = write_voices(tmp_path / "voices")
    browser.click(*widget_center(browser, "Upload audios…"))
    chooser = browser.wait_event("Page.fileChooserOpened", 15)
    assert chooser["mode"] == "selectMultiple"
    picked = {"files": [str(p) for p in voices], "backendNodeId": chooser["backendNodeId"]}
    browser.send("DOM.setFileInputFiles", picked)
    folder = browser.wait_js(f"{NODE}.widgets.find(w => w.name === 'audios').value", 30, "the upload")
    uploaded = sorted(p.name for p in (comfy.base / "input" / folder).iterdir())
    print(f"\nuploaded into input/{folder}: {uploaded}")
    assert folder.startswith("resync_batch/audios-") and uploaded == ["english.wav", "japanese.wav"]

    # 4. queue through the UI (the Run button's call) and wait for both nodes' results
    started = time.monotonic()
    browser.js(f"{APP}.queuePrompt(0)")
    browser.wait_js(f"!!{NODE}.resyncBatch", 600, "the batch to finish")
    browser.wait_js(f"{SINGLE}.videoContainer?.querySelector('video')?.src.includes('type=output')", 600,
                    "the single job's saved video")
    print(f"workflow ran in {time.monotonic() - started:.1f} s; progress texts: {browser.js('window.resyncTestTexts')}")
    texts = browser.js("window.resyncTestTexts")
    assert texts[:2] == ["item 1/2: english.wav", "item 2/2: japanese.wav"]
    assert texts[-1] == "2 done, 0 skipped, 0 failed"

    # 5. the host's own preview shows the outputs in the nodes, and they play with sound
    fit_graph_in_view(browser)
    for node, name in ((NODE, "english.mp4"), (SINGLE, "single_00001_.mp4")):
        browser.wait_js(f"{node}.videoContainer?.querySelector('video')?.readyState >= 2", 60, f"the preview of {name}")
        playing = play_preview(browser, node)
        print(f"preview of {name}:", playing)
        assert f"filename={name}" in playing["src"] and (playing["width"], playing["height"]) == (512, 512)
        assert playing["duration"] == pytest.approx(1.0, abs=0.05)  # the 1 s voices (it loops in the node)
        assert playing["frames"] >= 10 and playing["updates"] >= 2 and not playing["paused"] and not playing["muted"]
        assert playing["audioBytes"] > 0 and playing["shown"] > 100  # sound decoded; the element is on screen
        pause = "v.pause(); v.currentTime = 0.6;"  # a still frame for the screenshot
        browser.js(f"(() => {{ const v = {node}.videoContainer.querySelector('video'); {pause} }})()")
    time.sleep(0.5)
    shot = browser.screenshot(ARTIFACTS / "browser_batch.png")
    (ARTIFACTS / ".gitignore").write_text("*\n")  # artifacts are kept, never committed
    print(f"screenshot: {shot}")

    # 6. "Download all (zip)" hands the browser the batch's zip
    label = browser.js(f"{NODE}.resyncDownloadWidget.label")
    browser.click(*widget_center(browser, "Download all (zip)"))
    done = browser.wait_event("Browser.downloadProgress", 60, lambda p: p["state"] in ("completed", "canceled"))
    assert done["state"] == "completed", done
    [zip_file] = downloads.iterdir()
    with zipfile.ZipFile(zip_file) as archive:
        members = sorted(archive.namelist())
    print(f"{label!r} downloaded {zip_file.name} ({done['totalBytes']} bytes): {members}")
    assert zip_file.name.startswith("browser_") and members == ["english.mp4", "japanese.mp4", "report.csv",
                                                                 "report.json"]

    # 7. nothing went wrong in the pack's scripts
    ours, theirs = pack_errors(browser.drain())
    print(f"page errors from the host itself (not the pack): {len(theirs)}")
    for text in theirs:
        print("  ", text[:160])
    assert ours == []
