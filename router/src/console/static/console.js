// Switchboard console: theme toggle, charts (uPlot) and the playground. Loaded as a file (the
// Content-Security-Policy allows no inline script and no eval); every value from the server or an
// upstream is written with textContent, never as HTML.
"use strict";

(function () {
  // ---- Theme: the system's (prefers-color-scheme) unless the toggle chose one. ----
  const THEME_KEY = "switchboard-console-theme";

  function applyTheme() {
    const chosen = localStorage.getItem(THEME_KEY);
    if (chosen === "dark" || chosen === "light") {
      document.documentElement.dataset.theme = chosen;
    } else {
      delete document.documentElement.dataset.theme;
    }
  }

  function currentTheme() {
    const chosen = document.documentElement.dataset.theme;
    if (chosen) return chosen;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  applyTheme();

  document.addEventListener("click", (e) => {
    const toggle = e.target.closest("#theme-toggle");
    if (!toggle) return;
    localStorage.setItem(THEME_KEY, currentTheme() === "dark" ? "light" : "dark");
    applyTheme();
    redrawCharts();
  });

  // ---- Charts: each `.plot[data-chart]` holds its data as JSON (see layout.rs). ----
  const plots = new Map();

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // Dollars with the decimals a value needs: cents from a dollar up, two significant digits
  // below (at most six decimals).
  function formatValue(unit, v) {
    if (v == null) return "–";
    if (unit === "USD") {
      if (v === 0) return "$0";
      const a = Math.abs(v);
      const digits = a >= 1 ? 2 : Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(a))));
      return "$" + v.toFixed(digits);
    }
    return Math.round(v).toLocaleString("en-US") + (unit === "requests" ? "" : " " + unit);
  }

  function formatX(step, secs) {
    const d = new Date(secs * 1000);
    const iso = d.toISOString();
    return step === "hour" ? iso.slice(5, 13).replace("T", " ") + ":00 UTC" : iso.slice(0, 10);
  }

  function drawChart(el) {
    if (typeof uPlot === "undefined") return;
    let spec;
    try {
      spec = JSON.parse(el.dataset.chart);
    } catch (_) {
      return;
    }
    if (!spec.xs || !spec.xs.length || !spec.series || !spec.series.length) return;
    const old = plots.get(el);
    if (old) old.destroy();
    el.textContent = "";
    const palette = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => cssVar("--series-" + i));
    const axisColor = cssVar("--muted");
    const gridColor = cssVar("--grid");
    const opts = {
      width: Math.max(280, el.clientWidth || 600),
      height: 260,
      scales: { x: { time: false } },
      padding: [12, 28, 0, 4],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: spec.step === "hour" ? "hour (UTC)" : "day (UTC)", value: (u, v) => (v == null ? "–" : formatX(spec.step, v)) },
      ].concat(
        spec.series.map((s, i) => ({
          label: s.label,
          stroke: palette[i % palette.length],
          width: 2,
          dash: s.dashed ? [6, 4] : undefined,
          spanGaps: false,
          points: { show: spec.xs.length < 40 },
          value: (u, v) => formatValue(spec.unit, v),
        })),
      ),
      axes: [
        {
          label: spec.step === "hour" ? "Hour (UTC)" : "Day (UTC)",
          stroke: axisColor,
          grid: { stroke: gridColor },
          ticks: { stroke: gridColor },
          values: (u, splits) =>
            splits.map((v) => (spec.step === "hour" ? new Date(v * 1000).toISOString().slice(11, 16) : formatX(spec.step, v))),
        },
        {
          label: spec.unit,
          stroke: axisColor,
          grid: { stroke: gridColor },
          ticks: { stroke: gridColor },
          size: 70,
          values: (u, splits) => splits.map((v) => formatValue(spec.unit, v)),
        },
      ],
    };
    const data = [spec.xs].concat(spec.series.map((s) => s.values));
    const plot = new uPlot(opts, data, el);
    el.dataset.drawn = "yes";
    plots.set(el, plot);
  }

  function drawCharts(root) {
    (root || document).querySelectorAll(".plot[data-chart]").forEach((el) => {
      if (el.dataset.drawn !== "yes") drawChart(el);
    });
  }

  function redrawCharts() {
    for (const [el, plot] of plots) {
      if (!el.isConnected) {
        plot.destroy();
        plots.delete(el);
        continue;
      }
      delete el.dataset.drawn;
      drawChart(el);
    }
  }

  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawCharts);
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [el, plot] of plots) {
        if (el.isConnected) plot.setSize({ width: Math.max(280, el.clientWidth), height: 260 });
      }
    }, 150);
  });

  // ---- Playground: one streamed request per chosen model, side by side. ----
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function field(section, role) {
    return section.querySelector('[data-role="' + role + '"]');
  }

  async function runColumn(section, model, key, prompt, maxTokens) {
    const text = field(section, "text");
    const error = field(section, "error");
    section.hidden = false;
    section.dataset.state = "streaming";
    field(section, "model").textContent = model;
    text.textContent = "";
    error.hidden = true;
    error.textContent = "";
    for (const role of ["tokens", "cost", "ttft", "latency", "generation"]) field(section, role).textContent = "…";
    const started = performance.now();
    let firstToken = null;
    let usage = null;
    try {
      const resp = await fetch("/console/playground/chat", {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "X-CSRF-Token": csrfToken(),
          "X-Playground-Key": key,
        },
        body: JSON.stringify({
          model: model,
          messages: [{ role: "user", content: prompt }],
          stream: true,
          stream_options: { include_usage: true },
          max_tokens: maxTokens,
        }),
      });
      const generation = resp.headers.get("x-generation-id");
      const genCell = field(section, "generation");
      genCell.textContent = "";
      if (generation) {
        const a = document.createElement("a");
        a.href = "/console/requests/" + encodeURIComponent(generation);
        a.textContent = generation;
        genCell.appendChild(a);
      } else {
        genCell.textContent = "–";
      }
      if (!resp.ok || !resp.body) {
        let message = resp.status + " " + resp.statusText;
        try {
          const body = await resp.text();
          try {
            const j = JSON.parse(body);
            message = resp.status + ": " + ((j.error && j.error.message) || body);
          } catch (_) {
            if (body) message = resp.status + ": " + body;
          }
        } catch (_) {}
        throw new Error(message);
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") continue;
            let chunk;
            try {
              chunk = JSON.parse(data);
            } catch (_) {
              continue;
            }
            if (chunk.error) throw new Error(chunk.error.message || "stream error");
            const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && typeof delta.content === "string" && delta.content) {
              if (firstToken === null) firstToken = performance.now();
              text.textContent += delta.content;
            }
            if (chunk.usage) usage = chunk.usage;
          }
        }
      }
      const total = performance.now() - started;
      field(section, "latency").textContent = Math.round(total) + " ms";
      field(section, "ttft").textContent = firstToken === null ? "–" : Math.round(firstToken - started) + " ms";
      if (usage) {
        field(section, "tokens").textContent = usage.prompt_tokens + " / " + usage.completion_tokens;
        field(section, "cost").textContent = usage.cost != null ? "$" + usage.cost : "–";
      } else {
        field(section, "tokens").textContent = "–";
        field(section, "cost").textContent = "–";
      }
      section.dataset.state = "done";
    } catch (e) {
      error.textContent = String(e.message || e);
      error.hidden = false;
      for (const role of ["tokens", "cost", "ttft", "latency"]) field(section, role).textContent = "–";
      section.dataset.state = "error";
    }
  }

  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form.id !== "playground") return;
    e.preventDefault();
    const key = form.querySelector("#pg-key").value.trim();
    const prompt = form.querySelector("#pg-prompt").value;
    const maxTokens = parseInt(form.querySelector("#pg-max").value, 10) || 256;
    const selects = form.querySelectorAll('select[name="model"]');
    const sections = document.querySelectorAll("#pg-answers .answer");
    selects.forEach((select, i) => {
      const section = sections[i];
      if (!section) return;
      if (!select.value) {
        section.hidden = true;
        return;
      }
      runColumn(section, select.value, key, prompt, maxTokens);
    });
  });

  // ---- Start, and again for content htmx swaps in. ----
  function init(root) {
    applyTheme();
    drawCharts(root);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => init(document));
  } else {
    init(document);
  }
  document.addEventListener("htmx:load", (e) => drawCharts(e.detail && e.detail.elt ? e.detail.elt : document));
})();
