/* Runwatch dashboard: the charts (uPlot) and the little glue htmx does not do.
 *
 * Every `.chart[data-key]` inside `#charts` (run page) or `#compare` (compare page) asks the server for
 * its series downsampled to the plot's width (`series.json?key=&x=&width=`; min/max per pixel column,
 * so a one-step spike or NaN is never averaged away) and again, for the visible window only, after a
 * zoom. Rule thresholds are drawn as horizontal lines, alerts as vertical markers where they fired and
 * resolved, non-finite points as red ticks along the top. While the run is running, series refresh
 * every 5 s (unless zoomed).
 */
(function () {
  "use strict";

  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
  var charts = (window.runwatchCharts = {});
  var pending = 0;

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  /* The server's series as uPlot columns: raw points, or per pixel column its min then its max
   * (at the column's first and last x), so the drawn line spans every value the column holds. */
  function toColumns(series) {
    var xs = [], ys = [];
    for (var i = 0; i < series.xs.length; i++) {
      var lo = series.min[i], hi = series.max[i];
      xs.push(series.xs[i]); ys.push(lo);
      if (series.mode === "minmax" && (hi !== lo || series.xe[i] !== series.xs[i])) {
        xs.push(series.xe[i]); ys.push(hi);
      }
    }
    return [xs, ys];
  }

  function nonFinite(series) {
    return (series.nonfinite || []).map(function (item) { return Array.isArray(item) ? item[0] : item; });
  }

  function seriesUrl(base, key, x, width, range) {
    var q = "key=" + encodeURIComponent(key) + "&x=" + x + "&width=" + Math.max(10, Math.min(4000, width));
    if (range) q += "&start=" + range[0] + "&end=" + range[1];
    return base + (base.indexOf("?") >= 0 ? "&" : "?") + q;
  }

  function fetchJson(url) {
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}}).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status + " for " + url);
      return r.json();
    });
  }

  /* Lines drawn on top of the plot: thresholds, alert markers, the focused step, non-finite ticks. */
  function overlay(state) {
    return function (u) {
      var ctx = u.ctx, top = u.bbox.top, left = u.bbox.left, w = u.bbox.width, h = u.bbox.height;
      ctx.save();
      ctx.lineWidth = 2 * devicePixelRatio;
      (state.thresholds || []).forEach(function (t) {
        var y = u.valToPos(t.value, "y", true);
        if (y < top || y > top + h) return;
        ctx.strokeStyle = css("--threshold");
        ctx.setLineDash([8 * devicePixelRatio, 5 * devicePixelRatio]);
        ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + w, y); ctx.stroke();
      });
      ctx.setLineDash([]);
      (state.markers || []).forEach(function (m) {
        [[state.x === "time" ? m.fired_at : m.fired_step, "--marker-fired"],
         [state.x === "time" ? m.resolved_at : m.resolved_step, "--marker-resolved"]].forEach(function (p) {
          if (p[0] === null || p[0] === undefined) return;
          var x = u.valToPos(p[0], "x", true);
          if (x < left || x > left + w) return;
          ctx.strokeStyle = css(p[1]);
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
        });
      });
      if (state.focus !== null && state.x === "step") {
        var fx = u.valToPos(state.focus, "x", true);
        ctx.strokeStyle = css("--accent"); ctx.setLineDash([2 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.beginPath(); ctx.moveTo(fx, top); ctx.lineTo(fx, top + h); ctx.stroke();
        ctx.setLineDash([]);
      }
      ctx.fillStyle = css("--bad");
      (state.nonfinite || []).forEach(function (xv) {
        var x = u.valToPos(xv, "x", true);
        if (x < left || x > left + w) return;
        ctx.beginPath(); ctx.moveTo(x - 5 * devicePixelRatio, top); ctx.lineTo(x + 5 * devicePixelRatio, top);
        ctx.lineTo(x, top + 9 * devicePixelRatio); ctx.closePath(); ctx.fill();
      });
      ctx.restore();
    };
  }

  function yRange(state) {
    return function (u, lo, hi) {
      (state.thresholds || []).forEach(function (t) { lo = Math.min(lo, t.value); hi = Math.max(hi, t.value); });
      if (lo === null || hi === null || !isFinite(lo) || !isFinite(hi)) return [0, 1];
      var pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
      return [lo - pad, hi + pad];
    };
  }

  /* One chart: `sources` are [{label, url}] (one per run on the compare page). */
  function Chart(el, sources, opts) {
    var self = this;
    this.el = el; this.sources = sources; this.x = opts.x; this.zoomed = null; this.plot = null;
    this.state = {thresholds: opts.thresholds, markers: opts.markers, focus: opts.focus, x: opts.x, nonfinite: []};
    this.width = Math.max(240, el.querySelector(".plot").clientWidth || el.clientWidth - 16);
    this.load = function (range) {
      pending++;
      var requests = self.sources.map(function (s) {
        return fetchJson(seriesUrl(s.url, el.dataset.key, self.x, self.width, range));
      });
      return Promise.all(requests).then(function (results) {
        self.state.nonfinite = [];
        var tables = results.map(function (r) { self.state.nonfinite = self.state.nonfinite.concat(nonFinite(r)); return toColumns(r); });
        var data = tables.length === 1 ? tables[0] : uPlot.join(tables);
        self.draw(data, range);
      }).catch(function (err) {
        el.dataset.error = String(err);
        console.error(err);
      }).finally(function () { pending--; markDone(); });
    };
    this.draw = function (data, range) {
      if (self.plot && self.plot.__x === self.x) {
        self.plot.setData(data, !range);
        if (range) self.plot.setScale("x", {min: range[0], max: range[1]});
      } else {
        if (self.plot) self.plot.destroy();
        var series = [{label: self.x === "time" ? "time" : "step"}].concat(self.sources.map(function (s, i) {
          return {label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: self.sources.length > 1,
                  points: {show: false}};
        }));
        self.plot = new uPlot({
          width: self.width, height: 220, series: series,
          scales: {x: {time: self.x === "time"}, y: {range: yRange(self.state)}},
          axes: [{stroke: css("--muted"), grid: {stroke: css("--line")}},
                 {stroke: css("--muted"), grid: {stroke: css("--line")}, size: 60}],
          cursor: {drag: {x: true, y: false, setScale: true}},
          legend: {live: true},
          hooks: {
            draw: [overlay(self.state), function () { el.dataset.drawn = String(Number(el.dataset.drawn || 0) + 1); }],
            setSelect: [function (u) {
              if (u.select.width < 3) return;
              var lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
              self.zoomed = [lo, hi];
              self.load(self.zoomed);
            }],
          },
        }, data, el.querySelector(".plot"));
        self.plot.__x = self.x;
        self.plot.over.addEventListener("dblclick", function () { self.zoomed = null; self.load(null); });
      }
    };
  }

  function markDone() {
    if (pending === 0) document.body.dataset.chartsDrawn = String(Object.keys(charts).length);
  }

  function setup(container, sourcesFor) {
    var focus = container.dataset.focusStep !== undefined ? Number(container.dataset.focusStep) : null;
    var x = container.dataset.x || "step";
    container.querySelectorAll(".chart[data-key]").forEach(function (el) {
      var chart = new Chart(el, sourcesFor(el), {
        x: x, focus: focus,
        thresholds: JSON.parse(el.dataset.thresholds || "[]"),
        markers: JSON.parse(el.dataset.markers || "[]"),
      });
      charts[el.dataset.key] = chart;
      chart.load(null);
    });
    if (focus !== null && location.hash) {
      var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) { target.classList.add("highlight"); target.scrollIntoView({block: "center"}); }
    }
    document.querySelectorAll('input[name="x-axis"]').forEach(function (radio) {
      radio.addEventListener("change", function () {
        Object.keys(charts).forEach(function (key) {
          var c = charts[key]; c.x = radio.value; c.state.x = radio.value; c.zoomed = null; c.load(null);
        });
      });
    });
    if (container.dataset.state === "running") {
      var live = setInterval(function () {
        // The header (refreshed by htmx) says when the run ended: one last refresh, then stop.
        var badge = document.querySelector("#run-header .badge");
        if (badge && !badge.classList.contains("state-running")) clearInterval(live);
        Object.keys(charts).forEach(function (key) { if (!charts[key].zoomed) charts[key].load(null); });
      }, 5000);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var run = document.getElementById("charts");
    if (run) setup(run, function () { return [{label: "value", url: run.dataset.seriesUrl}]; });
    var compare = document.getElementById("compare");
    if (compare) {
      var runs = JSON.parse(compare.dataset.runs || "[]");
      setup(compare, function () { return runs.map(function (r) { return {label: r.name, url: r.series_url}; }); });
    }
    if (!run && !compare) document.body.dataset.chartsDrawn = "0";
  });
})();
