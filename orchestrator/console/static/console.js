// Progressive enhancement only: every page works as plain HTML; this draws the charts and keeps
// the inbox live.
(function () {
  "use strict";
  const COLORS = { email: "#2563eb", sms: "#16a34a", whatsapp: "#0d9488" };

  function drawCharts() {
    const source = document.getElementById("chart-data");
    if (!source || typeof Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const measure = canvas.dataset.chart;
      const datasets = Object.keys(data.channels).sort().map(function (channel) {
        return { label: channel, data: data.channels[channel][measure], backgroundColor: COLORS[channel] || "#6b7280" };
      });
      canvas.chart = new Chart(canvas, {
        type: "bar",
        data: { labels: data.labels, datasets: datasets },
        options: { animation: false, responsive: true, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
      });
    });
    document.body.dataset.chartsReady = "true";
  }

  function drawSizeChart() {
    const source = document.getElementById("size-data");
    const canvas = document.querySelector("canvas[data-size-chart]");
    if (!source || !canvas || typeof Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    canvas.chart = new Chart(canvas, {
      type: "line",
      data: { labels: data.labels, datasets: [{ label: "members", data: data.members, borderColor: "#2563eb", stepped: true }] },
      options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } } },
    });
    document.body.dataset.chartsReady = "true";
  }

  function liveInbox() {
    const inbox = document.getElementById("inbox");
    if (!inbox || !window.EventSource) return;
    const state = document.getElementById("live-state");
    const stream = new EventSource(inbox.dataset.stream);
    stream.addEventListener("changed", function () {
      const open = document.querySelector("[data-thread]");
      htmx.ajax("GET", inbox.dataset.liveSrc + (open ? "&open=" + open.dataset.thread : ""), { target: "#inbox" });
      if (open && !document.activeElement.closest(".reply")) {
        htmx.ajax("GET", "/conversations/" + open.dataset.thread + "/thread", { target: "#thread" });
      }
    });
    stream.onopen = function () { if (state) { state.textContent = "live"; state.classList.add("on"); } };
    stream.onerror = function () { if (state) { state.textContent = "reconnecting…"; state.classList.remove("on"); } };
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(); drawSizeChart(); liveInbox(); });
})();
