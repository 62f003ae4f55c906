#!/usr/bin/env python3
"""The OpenAI Agents SDK, in its default configuration, against Switchboard.

Default model, default API (Responses, non-streamed `Runner.run`), a strict function tool: the
agent calls `run_shell` and answers once it has the result; then the same with
`Runner.run_streamed`. Only the endpoint is configured, through the SDK's environment
(`OPENAI_BASE_URL`, `OPENAI_API_KEY`; `OPENAI_AGENTS_DISABLE_TRACING=1` keeps the trace exporter
from calling api.openai.com).

Driven by `tests/tests/responses_sdks.rs` (upstream: the mock in `tests/src/upstreams`).
Prints `ok` lines; on a failure prints `FAIL <check>: ...` and exits 1.
"""

from __future__ import annotations

import asyncio
import sys
import traceback

import agents
from agents import Agent, Runner, function_tool

FINAL_TEXT = "Done: the command printed hi."
ran: list[str] = []


@function_tool
def run_shell(command: str) -> str:
    """Run a shell command and return its output."""
    ran.append(command)
    return "hi" if command.strip() == "echo hi" else f"ran {command}"


def agent() -> Agent:
    return Agent(name="switchboard-check", instructions="You are a helpful agent.", tools=[run_shell])


async def check_run() -> str:
    result = await Runner.run(agent(), "Run the shell command: echo hi")
    assert result.final_output == FINAL_TEXT, result.final_output
    assert ran == ["echo hi"], ran
    return f"model {agents.models.get_default_model()}: {result.final_output!r}"


async def check_run_streamed() -> str:
    result = Runner.run_streamed(agent(), "Run the shell command: echo hi")
    kinds = [event.type async for event in result.stream_events()]
    assert result.final_output == FINAL_TEXT, result.final_output
    return f"{len(kinds)} events: {result.final_output!r}"


async def main() -> int:
    print(f"openai-agents {agents.__version__}")
    for name, check in [("run", check_run), ("run_streamed", check_run_streamed)]:
        try:
            detail = await check()
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            print(f"FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"ok   {name}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
