"""The web console in a real browser: Playwright for Python drives Debian's chromium (never a
downloaded browser) headless against a router that tests/tests/console_browser.rs started and
sent traffic through.

Usage: console_check.py ADMIN_URL CHROMIUM PLAN.json

PLAN.json (written by the Rust test): {"token", "client_key", "filter_model", "hostile_model",
"playground_models": [..], "prompt", "screenshots": DIR or null}.

It signs in with the admin token, visits every page and reads what they show (the numbers the
Rust side compares with the usage API), draws the charts, filters the requests, opens one,
streams a playground reply, flips the theme, and records every Content-Security-Policy
violation, page error and dialog (a hostile model name that ran as script would open one). It
prints one JSON line with all of it.
"""

import json
import os
import shutil
import sys
import tempfile

from playwright.sync_api import sync_playwright

# As tests/browser/chromium_check.py: no sandbox as root, nothing that reaches for the network.
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

TIMEOUT = 30_000


def stats(page):
    """Every headline number on the page: data-stat -> (text, exact)."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-stat]')].map(
            (e) => [e.dataset.stat, {text: e.textContent.trim(), exact: e.dataset.exact || null}]))"""
    )


def main() -> None:
    admin, chromium, plan_path = sys.argv[1:4]
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    shots = plan.get("screenshots")
    report = {"csp_violations": [], "page_errors": [], "dialogs": [], "console_errors": []}
    profile = tempfile.mkdtemp(prefix="switchboard-console-")

    def shot(page, name):
        if shots:
            os.makedirs(shots, exist_ok=True)
            page.screenshot(path=os.path.join(shots, name + ".png"), full_page=True)

    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=chromium,
                headless=True,
                args=ARGS,
                viewport={"width": 1360, "height": 900},
                color_scheme="light",
            )
            page = context.new_page()

            def on_console(msg):
                text = msg.text
                if "Content Security Policy" in text or "Content-Security-Policy" in text:
                    report["csp_violations"].append(text)
                elif msg.type == "error":
                    report["console_errors"].append(text)

            page.on("console", on_console)
            page.on("pageerror", lambda e: report["page_errors"].append(str(e)))

            def on_dialog(d):
                report["dialogs"].append(d.message)
                d.dismiss()

            page.on("dialog", on_dialog)

            # Signing in: the root sends an anonymous browser to the login page.
            page.goto(admin + "/", wait_until="load", timeout=TIMEOUT)
            report["login_url"] = page.url
            shot(page, "login")
            page.fill("#token", "not-the-token")
            page.click("button[type=submit]")
            page.wait_for_selector("[data-testid=login-error]", timeout=TIMEOUT)
            report["wrong_token_error"] = page.inner_text("[data-testid=login-error]")
            page.fill("#token", plan["token"])
            page.click("button[type=submit]")
            page.wait_for_selector("[data-stat=spend-today]", timeout=TIMEOUT)
            report["after_login_url"] = page.url
            report["who"] = page.inner_text("[data-testid=who]")
            cookies = {c["name"]: c for c in context.cookies()}
            session = cookies.get("sb_console", {})
            report["session_cookie"] = {
                "http_only": session.get("httpOnly"),
                "same_site": session.get("sameSite"),
                "readable_by_script": "sb_console" in page.evaluate("document.cookie"),
            }

            # Overview: numbers and charts (a week by model, then 24 hours by team).
            page.wait_for_selector("#chart-spend .plot[data-drawn=yes] canvas", timeout=TIMEOUT)
            report["overview"] = stats(page)
            report["overview_charts"] = page.locator(".plot[data-drawn=yes]").count()
            report["overview_legend"] = page.locator("#chart-spend .u-legend .u-series").all_inner_texts()
            report["top_models"] = page.locator("table[data-top=model] tbody td:first-child").all_inner_texts()
            # Hover over the middle of the spend chart: the legend shows the values there.
            box = page.locator("#chart-spend .u-over").bounding_box()
            page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
            report["hover_legend"] = page.locator("#chart-spend .u-legend").inner_text()
            shot(page, "overview")
            page.click("a.pill[href*='range=24h&by=model']")
            page.wait_for_selector(".pill[aria-current=true][href*='range=24h&by=model']", timeout=TIMEOUT)
            page.click("a.pill[href*='range=24h&by=team']")
            page.wait_for_selector(".pill[aria-current=true][href*='range=24h&by=team']", timeout=TIMEOUT)
            page.wait_for_selector("#chart-spend .plot[data-drawn=yes] canvas", timeout=TIMEOUT)
            report["overview_24h_title"] = page.inner_text("#chart-spend figcaption")
            report["overview_24h_legend"] = page.locator("#chart-spend .u-legend .u-series").all_inner_texts()

            # Theme toggle: dark, drawn again, then back.
            page.click("#theme-toggle")
            report["theme_after_toggle"] = page.evaluate("document.documentElement.dataset.theme || null")
            page.wait_for_selector("#chart-spend .plot[data-drawn=yes] canvas", timeout=TIMEOUT)
            shot(page, "overview-dark")
            page.click("#theme-toggle")
            report["theme_after_second_toggle"] = page.evaluate("document.documentElement.dataset.theme || null")

            # Budgets.
            page.click("nav a[href='/console/budgets']")
            page.wait_for_selector("article.budget", timeout=TIMEOUT)
            page.wait_for_selector("article.budget .plot[data-drawn=yes] canvas", timeout=TIMEOUT)
            report["budgets"] = page.evaluate(
                """() => [...document.querySelectorAll('article.budget')].map((a) => ({
                    id: a.dataset.budget,
                    spent: a.querySelector('[data-stat=spent]').dataset.exact,
                    forecast: a.querySelector('[data-stat=forecast]').textContent.trim(),
                }))"""
            )
            shot(page, "budgets")

            # Keys.
            page.click("nav a[href='/console/keys']")
            page.wait_for_selector("table.keys", timeout=TIMEOUT)
            report["keys"] = page.evaluate(
                """() => [...document.querySelectorAll('tr[data-key]')].map((r) => ({
                    id: r.dataset.key,
                    prefix: r.children[2].textContent.trim(),
                    month: r.children[3].dataset.exact,
                    requests: Number(r.children[5].dataset.requests),
                    text: r.textContent,
                }))"""
            )
            shot(page, "keys")

            # Providers & routes.
            page.click("nav a[href='/console/providers']")
            page.wait_for_selector("table.routes", timeout=TIMEOUT)
            report["route_models"] = page.locator("table.routes tbody tr td:first-child code").all_inner_texts()
            report["tiers"] = page.locator("table.routes [data-tier]").all_inner_texts()
            report["rejected_objects"] = page.locator("tr[data-ready=false] td:first-child").all_inner_texts()
            shot(page, "providers")

            # Requests: all, then filtered by model (htmx swaps the results, the URL follows).
            page.click("nav a[href='/console/requests']")
            page.wait_for_selector("table.requests", timeout=TIMEOUT)
            report["requests_all"] = page.locator("tr[data-generation]").count()
            report["hostile_cells"] = page.evaluate(
                """(m) => [...document.querySelectorAll('td[data-model]')]
                    .filter((td) => td.textContent === m).length""",
                plan["hostile_model"],
            )
            report["script_elements"] = page.evaluate(
                "document.querySelectorAll('script:not([src])').length"
            )
            shot(page, "requests")
            page.fill("input[name=model]", plan["filter_model"])
            page.click("form.filters button[type=submit]")
            page.wait_for_url("**model=*", timeout=TIMEOUT)
            page.wait_for_selector("table.requests", timeout=TIMEOUT)
            report["filtered_url"] = page.url
            report["filtered_models"] = page.locator("tr[data-generation] td[data-model]").all_inner_texts()
            report["filtered_ids"] = page.evaluate(
                "[...document.querySelectorAll('tr[data-generation]')].map((r) => r.dataset.generation)"
            )
            # One request in detail.
            page.locator("tr[data-generation] td a").first.click()
            page.wait_for_selector("dl.facts[data-generation]", timeout=TIMEOUT)
            report["detail"] = page.evaluate(
                """() => {
                    const dl = document.querySelector('dl.facts[data-generation]');
                    const f = (n) => dl.querySelector('[data-field=' + n + ']');
                    return {
                        id: dl.dataset.generation,
                        model: f('model').textContent,
                        status: f('status').textContent,
                        cost: f('cost').dataset.exact,
                        ttft: f('ttft').textContent,
                        attempts: document.querySelectorAll('table.attempts tbody tr').length,
                    };
                }"""
            )
            shot(page, "request-detail")

            # Playground: the models side by side, streamed from the mock provider.
            page.click("nav a[href='/console/playground']")
            page.wait_for_selector("#playground", timeout=TIMEOUT)
            page.fill("#pg-key", plan["client_key"])
            selects = page.locator("select[name=model]")
            for i, model in enumerate(plan["playground_models"]):
                selects.nth(i).select_option(model)
            page.fill("#pg-prompt", plan["prompt"])
            page.click("#pg-send")
            answers = []
            for i, _ in enumerate(plan["playground_models"]):
                section = page.locator(f".answer[data-column='{i}']")
                # Streaming shows text before the answer is complete.
                page.wait_for_selector(
                    f".answer[data-column='{i}'][data-state=done], .answer[data-column='{i}'][data-state=error]",
                    timeout=TIMEOUT,
                )
                answers.append({
                    "state": section.get_attribute("data-state"),
                    "model": section.locator("[data-role=model]").inner_text(),
                    "text": section.locator("[data-role=text]").inner_text(),
                    "tokens": section.locator("[data-role=tokens]").inner_text(),
                    "cost": section.locator("[data-role=cost]").inner_text(),
                    "ttft": section.locator("[data-role=ttft]").inner_text(),
                    "latency": section.locator("[data-role=latency]").inner_text(),
                    "generation": section.locator("[data-role=generation]").inner_text(),
                    "error": section.locator("[data-role=error]").inner_text(),
                })
            report["playground"] = answers
            shot(page, "playground")

            # Signing out ends the session: the console asks for the token again.
            page.click("form[action='/console/logout'] button")
            page.wait_for_selector("#token", timeout=TIMEOUT)
            page.goto(admin + "/console/keys", wait_until="load", timeout=TIMEOUT)
            report["after_logout_url"] = page.url
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
