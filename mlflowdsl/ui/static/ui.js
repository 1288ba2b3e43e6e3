// mlw ui: the live parts of the pages (no framework beyond the vendored htmx).
// - an execution page follows /api/executions/ID/events (server-sent events) and recolours the
//   graph's nodes, the task table and the progress without reloading;
// - a click on a task's name or its graph node loads that task's logs, errors and tracebacks;
// - "compare selected" on the list opens /compare with the ticked executions.
(function () {
  "use strict";
  var FINISHED = ["succeeded", "failed", "cancelled"];
  var DARK_TEXT = ["pending", "skipped"];

  window.mlwCompareSelected = function () {
    var ids = Array.prototype.map.call(document.querySelectorAll("input.pick:checked"), function (box) { return box.value; });
    if (ids.length) { window.location.href = "/compare?ids=" + ids.map(encodeURIComponent).join(","); }
  };

  function byTask(selector, task) {
    return document.querySelector(selector + '[data-task="' + CSS.escape(task) + '"]');
  }

  function paintBadge(el, status, colors) {
    if (!el) { return; }
    el.textContent = status;
    el.style.background = colors[status] || "#777";
  }

  function apply(root, colors, snap) {
    root.dataset.status = snap.status;
    paintBadge(document.getElementById("execution-status"), snap.status, colors);
    var p = snap.progress;
    document.getElementById("progress-text").textContent = p.done + "/" + p.total + " tasks done";
    document.getElementById("progress-bar").style.width = p.percent + "%";
    Object.keys(snap.tasks).forEach(function (task) {
      var t = snap.tasks[task];
      var row = byTask("tr.task-row", task);
      if (row && row.dataset.status !== t.status) {
        row.dataset.status = t.status;
        paintBadge(row.querySelector(".task-status"), t.status, colors);
      }
      if (row && t.attempts) { row.querySelector(".task-attempts").textContent = t.attempts; }
      var node = byTask("#dag g.node", task);
      if (node && node.getAttribute("class") !== "node status-" + t.status) {
        node.setAttribute("class", "node status-" + t.status);
        node.querySelector("rect").setAttribute("fill", colors[t.status] || "#e0e0e0");
        node.querySelector("text").setAttribute("fill", DARK_TEXT.indexOf(t.status) >= 0 ? "#222" : "#fff");
        node.querySelector("title").textContent = task + ": " + t.status;
      }
    });
  }

  function follow() {
    var root = document.getElementById("execution");
    if (!root || !window.EventSource || FINISHED.indexOf(root.dataset.status) >= 0) { return; }
    var colors = JSON.parse(root.dataset.colors);
    var live = document.getElementById("live-indicator");
    var source = new EventSource("/api/executions/" + encodeURIComponent(root.dataset.id) + "/events");
    live.textContent = "· live";
    source.onmessage = function (ev) { apply(root, colors, JSON.parse(ev.data)); };
    source.addEventListener("done", function () {
      source.close();
      live.textContent = "· finished";
    });
  }

  // One listener for every task link and graph node (an execution may have thousands).
  function logClicks() {
    var root = document.getElementById("execution");
    if (!root) { return; }
    root.addEventListener("click", function (ev) {
      var el = ev.target.closest ? ev.target.closest("a.show-logs, #dag g.node") : null;
      if (!el || !window.htmx) { return; }
      ev.preventDefault();
      var url = "/executions/" + encodeURIComponent(root.dataset.id) + "/tasks/" + encodeURIComponent(el.dataset.task) + "/logs";
      window.htmx.ajax("GET", url, "#logs-panel");
      document.getElementById("logs").scrollIntoView();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    follow();
    logClicks();
  });
}());
