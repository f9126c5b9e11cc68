// Draws every <canvas data-chart="key"> from the JSON in #chart-data with Chart.js.
// Series differ by dash pattern and point shape as well as colour (Okabe-Ito palette),
// so they stay apart without colour; the table under each chart holds the numbers.
(function () {
  "use strict";
  var blob = document.getElementById("chart-data");
  if (!blob || typeof Chart === "undefined") { return; }
  var charts = JSON.parse(blob.textContent);
  var colours = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"];
  var dashes = [[], [6, 4], [2, 3], [10, 3, 2, 3]];
  var points = ["circle", "rect", "triangle", "crossRot"];
  var byKey = {};
  charts.forEach(function (c) { byKey[c.key] = c; });
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = byKey[canvas.getAttribute("data-chart")];
    if (!spec) { return; }
    var kind = spec.kind === "bar" || spec.labels.length <= 2 ? "bar" : "line";
    var sideways = spec.kind === "bar" && spec.labels.length > 8;  // long category lists read better down the page
    if (sideways) { canvas.parentNode.style.height = (60 + spec.labels.length * 16) + "px"; }
    new Chart(canvas, {
      type: kind,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (d, i) {
          return {
            label: d.label, data: d.data,
            borderColor: colours[i % colours.length], backgroundColor: colours[i % colours.length],
            borderDash: dashes[i % dashes.length], pointStyle: points[i % points.length],
            pointRadius: spec.labels.length > 60 ? 0 : 3, borderWidth: 2, spanGaps: false
          };
        })
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, indexAxis: sideways ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: spec.datasets.length > 1, labels: { usePointStyle: true } },
          tooltip: { callbacks: { label: function (ctx) {
            return ctx.dataset.label + ": " + (ctx.parsed.y === null ? "–" : ctx.parsed.y + " " + spec.unit);
          } } }
        },
        scales: {
          x: sideways ? { title: { display: true, text: spec.unit } }
                      : spec.kind === "bar" ? { ticks: { autoSkip: false } }
                      : { ticks: { maxTicksLimit: 6, maxRotation: 0, autoSkipPadding: 16 } },
          y: sideways ? { ticks: { autoSkip: false } }
                      : { beginAtZero: true, title: { display: true, text: spec.unit } }
        }
      }
    });
  });
})();
