// The admin's analytics page: reads GET /api/analytics/usage (the session cookie signs it
// in) by day and by avatar, and draws the charts with plotly.js.
(function () {
  "use strict";
  const form = document.getElementById("analytics-filters");
  const message = document.getElementById("analytics-message");
  const totalsBox = document.getElementById("analytics-totals");
  const csvLink = document.getElementById("analytics-csv");
  const LAYOUT = { margin: { t: 40, r: 50, b: 60, l: 60 }, legend: { orientation: "h" } };
  const CONFIG = { displaylogo: false, responsive: true };

  function isoDay(date) {
    return date.toISOString().slice(0, 10);
  }

  function params(groupBy) {
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (value) query.set(name, value);
    }
    if (groupBy) query.set("group_by", groupBy);
    return query;
  }

  async function usage(groupBy) {
    const response = await fetch(form.dataset.usageUrl + "?" + params(groupBy), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || "The usage figures could not be read (" + response.status + ").");
    return body;
  }

  function showTotals(totals) {
    const figures = [
      ["Sessions", totals.sessions],
      ["Session minutes", totals.session_minutes],
      ["Spoken minutes", totals.spoken_minutes],
      ["Answers", totals.answers],
      ["Answer p50 / p95 (ms)", (totals.answer_latency_p50_ms ?? "–") + " / " + (totals.answer_latency_p95_ms ?? "–")],
      ["Renders", totals.renders],
      ["Rendered minutes", totals.rendered_minutes],
      ["Preprocessing jobs", totals.preprocess_jobs],
      ["Errors", totals.errors],
    ];
    totalsBox.replaceChildren(
      ...figures.map(([label, value]) => {
        const box = document.createElement("div");
        const strong = document.createElement("strong");
        strong.textContent = String(value);
        box.append(strong, label);
        box.dataset.total = label;
        return box;
      })
    );
  }

  function draw(byDay, byAvatar) {
    const days = byDay.rows.map((row) => row.day);
    Plotly.react(
      "chart-sessions",
      [
        { type: "bar", name: "sessions", x: days, y: byDay.rows.map((r) => r.sessions) },
        { type: "scatter", mode: "lines+markers", name: "session minutes", x: days, y: byDay.rows.map((r) => r.session_minutes), yaxis: "y2" },
        { type: "scatter", mode: "lines", name: "spoken minutes", x: days, y: byDay.rows.map((r) => r.spoken_minutes), yaxis: "y2" },
      ],
      { ...LAYOUT, title: { text: "Sessions and minutes per day" }, yaxis: { title: { text: "sessions" } }, yaxis2: { title: { text: "minutes" }, overlaying: "y", side: "right", rangemode: "tozero" } },
      CONFIG
    );
    const top = byAvatar.rows.slice(0, 10).reverse();
    Plotly.react(
      "chart-avatars",
      [
        { type: "bar", orientation: "h", name: "session minutes", y: top.map((r) => r.avatar_name), x: top.map((r) => r.session_minutes) },
        { type: "bar", orientation: "h", name: "rendered minutes", y: top.map((r) => r.avatar_name), x: top.map((r) => r.rendered_minutes) },
      ],
      { ...LAYOUT, title: { text: "Top avatars (minutes)" }, barmode: "stack", margin: { ...LAYOUT.margin, l: 140 } },
      CONFIG
    );
    Plotly.react(
      "chart-latency",
      [
        { type: "scatter", mode: "lines+markers", name: "p50", x: days, y: byDay.rows.map((r) => r.answer_latency_p50_ms), connectgaps: false },
        { type: "scatter", mode: "lines+markers", name: "p95", x: days, y: byDay.rows.map((r) => r.answer_latency_p95_ms), connectgaps: false },
      ],
      { ...LAYOUT, title: { text: "Answer latency to the first frame (ms)" }, yaxis: { title: { text: "ms" }, rangemode: "tozero" } },
      CONFIG
    );
    Plotly.react(
      "chart-errors",
      [{ type: "bar", name: "errors", x: days, y: byDay.rows.map((r) => r.errors), marker: { color: "#c0392b" } }],
      { ...LAYOUT, title: { text: "Errors per day" } },
      CONFIG
    );
    const kinds = Object.entries(byDay.totals.errors_by_kind || {}).reverse();
    Plotly.react(
      "chart-error-kinds",
      [{ type: "bar", orientation: "h", name: "errors", y: kinds.map(([kind]) => kind), x: kinds.map(([, count]) => count), marker: { color: "#c0392b" } }],
      { ...LAYOUT, title: { text: "Errors by kind" }, margin: { ...LAYOUT.margin, l: 140 } },
      CONFIG
    );
  }

  async function refresh() {
    message.textContent = "Loading…";
    csvLink.href = form.dataset.usageCsvUrl + "?" + params("day");
    try {
      const [byDay, byAvatar] = await Promise.all([usage("day"), usage("avatar")]);
      showTotals(byDay.totals);
      draw(byDay, byAvatar);
      message.textContent = "Usage from " + byDay.from + " to " + byDay.to + " (UTC).";
      document.body.dataset.analyticsLoaded = "1";
    } catch (error) {
      message.textContent = error.message;
      document.body.dataset.analyticsLoaded = "error";
    }
  }

  const today = new Date();
  document.getElementById("analytics-to").value = isoDay(today);
  document.getElementById("analytics-from").value = isoDay(new Date(today.getTime() - 29 * 86400000));
  // The avatar list follows the tutor chosen.
  const avatarSelect = document.getElementById("analytics-avatar");
  document.getElementById("analytics-tutor").addEventListener("change", (event) => {
    for (const option of avatarSelect.options) {
      option.hidden = Boolean(option.value && event.target.value && option.dataset.tutor !== event.target.value);
    }
    if (avatarSelect.selectedOptions[0]?.hidden) avatarSelect.value = "";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  refresh();
})();
