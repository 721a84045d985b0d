"""A small driver for headless Chromium over the DevTools protocol, through a pipe: open a tab,
navigate, run JavaScript, wait for the page, record requests, take screenshots."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)


class BrowserError(RuntimeError):
    """Chromium answered a command with an error, or a script threw."""


class Browser:
    """One headless Chromium process; commands go in on its fd 3, answers come out of fd 4,
    each a JSON object ended by a NUL byte (--remote-debugging-pipe)."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_chromium, self._commands = os.pipe()
        self._answers, from_chromium = os.pipe()
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        # The shell puts the pipe ends where Chromium looks for them.
        command = f"exec {shlex.join(args)} 3<&{to_chromium} 4>&{from_chromium}"
        self._log = (profile.parent / "chromium.log").open("wb")  # why it died, if it does
        self.process = subprocess.Popen(
            ["bash", "-c", command],
            pass_fds=(to_chromium, from_chromium),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(to_chromium)
        os.close(from_chromium)
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._results: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._answers, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    with self._lock:
                        if "id" in message:
                            self._results[message["id"]] = message
                        else:
                            self.events.append(message)
                        self._lock.notify_all()

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._lock:
            while number not in self._results:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise BrowserError(f"no answer to {method} within {timeout}s")
                self._lock.wait(left)
            answer = self._results.pop(number)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def tab(self, width: int = 390, height: int = 844) -> Tab:
        """A new tab, its viewport `width` CSS pixels wide (a phone's by default)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        return Tab(self, session["sessionId"], width, height)

    def close(self) -> None:
        """End Chromium."""
        with contextlib.suppress(BrowserError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        os.close(self._commands)
        self._log.close()


class Tab:
    """One page of the browser."""

    def __init__(self, browser: Browser, session: str, width: int, height: int) -> None:
        self.browser = browser
        self.session = session
        for domain in ("Page", "Runtime", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
        )

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A command for this tab."""
        return self.browser.call(method, params, self.session)

    def navigate(self, url: str) -> None:
        """Load a URL (returns once navigation started; wait for what the page should show)."""
        answer = self.call("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"cannot load {url}: {answer['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        answer = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 15) -> Any:
        """Poll a JavaScript expression until it is truthy; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except BrowserError:
                value = None  # the page is between documents
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")

    def type_into(self, selector: str, text: str) -> None:
        """Focus a field and type into it, as keyboard input does."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", {"text": text})

    def click(self, selector: str) -> None:
        """Click an element at its centre with the mouse."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    def requested_urls(self) -> list[str]:
        """Every URL this browser asked for so far."""
        return [
            event["params"]["request"]["url"]
            for event in self.browser.events
            if event.get("method") == "Network.requestWillBeSent"
        ]

    def frames(self) -> list[dict[str, Any]]:
        """The page's frames below the top one, as Chromium holds them."""
        tree = self.call("Page.getFrameTree")["frameTree"]
        return [child["frame"] for child in tree.get("childFrames", [])]

    def screenshot(self, path: Path) -> None:
        """Save the whole page as a PNG."""
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(data["data"]))


def until(predicate: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    """Poll a Python predicate until truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
