#!/usr/bin/python3
"""Drives a headless Chromium through its DevTools protocol (python3-websocket): the
status page test's browser. The page stays open between calls, so `expect` proves the
page updates itself (no reload).

  cdp.py PORT open URL                       open URL in the first page, wait for its load
  cdp.py PORT expect JS VALUE TIMEOUT        until JS evaluates to VALUE; prints the seconds
  cdp.py PORT eval JS                        prints JS's value
  cdp.py PORT screenshot FILE                a PNG of the page
"""
import base64
import json
import sys
import time
import urllib.request

import websocket


def target(port):
    for _ in range(100):
        try:
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2))
            pages = [p for p in pages if p.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"cdp: no Chromium page on port {port}")


class Page:
    def __init__(self, port):
        self.ws = websocket.create_connection(target(port), timeout=20, suppress_origin=True)
        self.n = 0

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    sys.exit(f"cdp: {method}: {msg['error']}")
                return msg["result"]

    def eval(self, js):
        r = self.call("Runtime.evaluate", expression=js, returnByValue=True)
        if "exceptionDetails" in r:
            return None
        return r["result"].get("value")


def main():
    port, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    page = Page(port)
    if cmd == "open":
        page.call("Page.enable")
        page.call("Page.navigate", url=args[0])
        for _ in range(200):
            if page.eval("document.readyState") == "complete":
                return
            time.sleep(0.05)
        sys.exit("cdp: the page did not load")
    elif cmd == "expect":
        js, want, timeout = args[0], args[1], float(args[2])
        start = time.monotonic()
        got = None
        while time.monotonic() - start < timeout:
            got = page.eval(js)
            if str(got) == want:
                print(f"{time.monotonic() - start:.2f}")
                return
            time.sleep(0.05)
        sys.exit(f"cdp: {js} is {got!r}, not {want!r}, after {timeout} s")
    elif cmd == "eval":
        print(page.eval(args[0]))
    elif cmd == "screenshot":
        png = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(args[0], "wb") as f:
            f.write(base64.b64decode(png))
    else:
        sys.exit(f"cdp: unknown command {cmd}")


if __name__ == "__main__":
    main()
