"""Playwright for Python drives Debian's chromium (never a downloaded browser) headless against a
page served on loopback, as the console's browser tests will.

Usage: chromium_check.py URL CHROMIUM SCREENSHOT.png

The page (tests/tests/browser.rs serves it) runs a script that fetches /data.json from the same
server and writes the answer into #out; this waits for it, clicks the button, and prints one JSON
line: the title, #out's text after the click, the browser's user agent and the screenshot's path.
"""

import json
import shutil
import sys
import tempfile

from playwright.sync_api import sync_playwright

# The flags the machine's probe found necessary: no sandbox as root, and nothing that reaches
# for the network on its own (refused connections and failed lookups otherwise).
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    url, chromium, screenshot = sys.argv[1:4]
    profile = tempfile.mkdtemp(prefix="switchboard-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=ARGS
            )
            page = context.new_page()
            page.goto(url, wait_until="load", timeout=30_000)
            page.wait_for_selector("#out[data-loaded='yes']", timeout=30_000)
            page.click("#more")
            page.wait_for_selector("#out[data-clicked='yes']", timeout=30_000)
            page.screenshot(path=screenshot, full_page=True)
            print(json.dumps({
                "title": page.title(),
                "out": page.inner_text("#out"),
                "user_agent": page.evaluate("navigator.userAgent"),
                "screenshot": screenshot,
            }))
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
