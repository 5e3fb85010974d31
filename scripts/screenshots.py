#!/usr/bin/env python3
"""Takes the README's screenshots of a running app (`make run`, or any URL given as argument):
the workspace editor with its persistence panel open, synced with the server. Needs chromium and
chromedriver (`scripts/setup.sh test`). Writes docs/app-sync.png."""
import base64, json, os, socket, subprocess, sys, time, urllib.request

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5001/"
OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "app-sync.png")


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["value"]


def main():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = subprocess.Popen([os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"),
                               f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--disable-dev-shm-usage", "--hide-scrollbars"]
        session = call(base, "POST", "/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})
        s = f"/session/{session['sessionId']}"
        call(base, "POST", s + "/url", {"url": URL})
        for _ in range(300):
            text = call(base, "POST", s + "/execute/sync",
                        {"script": "return document.body.innerText", "args": []})
            if "online · synced" in text:
                break
            time.sleep(0.1)
        else:
            sys.exit("the app never showed 'online · synced'")
        button = call(base, "POST", s + "/element", {
            "using": "xpath", "value": "//button[contains(., 'Persistence panel')]"})
        call(base, "POST", s + f"/element/{list(button.values())[0]}/click", {})
        time.sleep(1.5)
        png = call(base, "GET", s + "/screenshot")
        with open(OUT, "wb") as f:
            f.write(base64.b64decode(png))
        call(base, "DELETE", s)
        print("wrote", os.path.normpath(OUT))
    finally:
        driver.terminate()


if __name__ == "__main__":
    main()
