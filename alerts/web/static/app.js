/* Runwatch dashboard: the charts (uPlot) and the little glue htmx does not do.
 *
 * Every `.chart[data-key]` inside `#charts` (run page) or `#compare` (compare page) asks the server for
 * its series downsampled to the plot's width (`series.json?key=&x=&width=`; min/max per pixel column,
 * so a one-step spike or NaN is never averaged away) and again, for the visible window only, after a
 * zoom. Rule thresholds are drawn as horizontal lines, alerts as vertical markers where they fired and
 * resolved, non-finite points as red ticks along the top. On the run page's step axis, a chart whose key a
 * `compare` rule judges also draws the rule's statistic of the other runs (`comparison.json`, same width
 * and window): a line, their 25th..75th percentile as a band behind the curves, the threshold dashed; a
 * failure there leaves the run's own curve drawn. While the run is running, series refresh every 5 s
 * (unless zoomed).
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

  /* The compare rules' bands (25th..75th percentile of the other runs), behind the series; null: a gap. */
  function bands(state) {
    return function (u) {
      if (!state.bands.length) return;
      var ctx = u.ctx, box = u.bbox;
      ctx.save();
      ctx.beginPath(); ctx.rect(box.left, box.top, box.width, box.height); ctx.clip();
      ctx.fillStyle = css("--compare"); ctx.globalAlpha = 0.15;
      state.bands.forEach(function (b) {
        var part = [];
        for (var i = 0; i <= b.xs.length; i++) {
          if (i < b.xs.length && b.low[i] !== null && b.high[i] !== null) { part.push(i); continue; }
          if (part.length > 1) {
            ctx.beginPath();
            part.forEach(function (j, n) {
              var x = u.valToPos(b.xs[j], "x", true), y = u.valToPos(b.high[j], "y", true);
              if (n) ctx.lineTo(x, y); else ctx.moveTo(x, y);
            });
            part.reverse().forEach(function (j) { ctx.lineTo(u.valToPos(b.xs[j], "x", true), u.valToPos(b.low[j], "y", true)); });
            ctx.closePath(); ctx.fill();
          }
          part = [];
        }
      });
      ctx.restore();
    };
  }

  /* The compare rules of a chart as extra uPlot columns and series: per rule its statistic and, with a
   * margin, its threshold. `found` is comparison.json (null when it failed: the columns stay, empty). */
  function comparisonColumns(declared, found, x) {
    var made = {tables: [], series: [], bands: []};
    if (x !== "step") return made;
    declared.forEach(function (d) {
      var c = ((found && found.comparisons) || []).filter(function (f) { return f.rule === d.rule; })[0] ||
              {steps: [], stat: [], threshold: [], low: [], high: [], label: d.rule + ": " + d.statistic};
      made.tables.push(d.has_margin ? [c.steps, c.stat, c.threshold] : [c.steps, c.stat]);
      made.series.push({label: c.label, stroke: css("--compare"), width: 2, points: {show: false}});
      if (d.has_margin) {
        made.series.push({label: d.rule + ": threshold", stroke: css("--threshold"), width: 1.5,
                          dash: [8 * devicePixelRatio, 5 * devicePixelRatio], points: {show: false}});
      }
      made.bands.push({xs: c.steps, low: c.low, high: c.high});
    });
    return made;
  }

  function yRange(state) {
    return function (u, lo, hi) {
      (state.thresholds || []).forEach(function (t) { lo = Math.min(lo, t.value); hi = Math.max(hi, t.value); });
      var xmin = u.scales.x.min, xmax = u.scales.x.max;
      state.bands.forEach(function (b) {
        for (var i = 0; i < b.xs.length; i++) {
          if (b.low[i] === null || (xmin !== null && b.xs[i] < xmin) || (xmax !== null && b.xs[i] > xmax)) continue;
          lo = lo === null ? b.low[i] : Math.min(lo, b.low[i]); hi = hi === null ? b.high[i] : Math.max(hi, b.high[i]);
        }
      });
      if (lo === null || hi === null || !isFinite(lo) || !isFinite(hi)) return [0, 1];
      var pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
      return [lo - pad, hi + pad];
    };
  }

  /* One chart: `sources` are [{label, url}] (one per run on the compare page); `comparisons` the compare
   * rules that judge its key in this run, drawn from `comparisonUrl` (run page). */
  function Chart(el, sources, opts) {
    var self = this;
    this.el = el; this.sources = sources; this.x = opts.x; this.zoomed = null; this.plot = null;
    this.comparisons = opts.comparisons || []; this.comparisonUrl = opts.comparisonUrl;
    this.state = {thresholds: opts.thresholds, markers: opts.markers, focus: opts.focus, x: opts.x, nonfinite: [],
                  bands: []};
    this.width = Math.max(240, el.querySelector(".plot").clientWidth || el.clientWidth - 16);
    this.load = function (range) {
      pending++;
      var requests = self.sources.map(function (s) {
        return fetchJson(seriesUrl(s.url, el.dataset.key, self.x, self.width, range));
      });
      var comparing = Promise.resolve(null);
      if (self.comparisons.length && self.comparisonUrl && self.x === "step") {
        comparing = fetchJson(seriesUrl(self.comparisonUrl, el.dataset.key, "step", self.width, range)).then(function (found) {
          delete el.dataset.comparisonError;
          return found;
        }, function (err) {  // the run's own curve is drawn all the same
          el.dataset.comparisonError = String(err);
          console.warn(err);
          return null;
        });
      }
      return Promise.all([Promise.all(requests), comparing]).then(function (both) {
        self.state.nonfinite = [];
        var tables = both[0].map(function (r) { self.state.nonfinite = self.state.nonfinite.concat(nonFinite(r)); return toColumns(r); });
        var extra = comparisonColumns(self.comparisons, both[1], self.x);
        self.state.bands = extra.bands;
        tables = tables.concat(extra.tables);
        var data = tables.length === 1 ? tables[0] : uPlot.join(tables);
        self.draw(data, range, extra.series);
      }).catch(function (err) {
        el.dataset.error = String(err);
        console.error(err);
      }).finally(function () { pending--; markDone(); });
    };
    this.draw = function (data, range, extraSeries) {
      // The same axis and series (labels carry the run counts of compare rules): new data; else a new plot.
      var shape = [self.x].concat(extraSeries.map(function (s) { return s.label; })).join("\n");
      if (self.plot && self.plot.__shape === shape) {
        self.plot.setData(data, !range);
        if (range) self.plot.setScale("x", {min: range[0], max: range[1]});
      } else {
        if (self.plot) self.plot.destroy();
        var series = [{label: self.x === "time" ? "time" : "step"}].concat(self.sources.map(function (s, i) {
          return {label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: self.sources.length > 1,
                  points: {show: false}};
        }), extraSeries);
        self.plot = new uPlot({
          width: self.width, height: 220, series: series,
          scales: {x: {time: self.x === "time"}, y: {range: yRange(self.state)}},
          axes: [{stroke: css("--muted"), grid: {stroke: css("--line")}},
                 {stroke: css("--muted"), grid: {stroke: css("--line")}, size: 60}],
          cursor: {drag: {x: true, y: false, setScale: true}},
          legend: {live: true},
          hooks: {
            drawAxes: [bands(self.state)],
            draw: [overlay(self.state), function () { el.dataset.drawn = String(Number(el.dataset.drawn || 0) + 1); }],
            setSelect: [function (u) {
              if (u.select.width < 3) return;
              var lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
              self.zoomed = [lo, hi];
              self.load(self.zoomed);
            }],
          },
        }, data, el.querySelector(".plot"));
        self.plot.__shape = shape;
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
        comparisons: JSON.parse(el.dataset.comparisons || "[]"),
        comparisonUrl: container.dataset.comparisonUrl,
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

  /* ---- Media: histograms and runwatch.plot charts -------------------------------------------------
   * Drawn from the JSON the server embedded (views/run_media.py shapes it): `data-histogram` holds a
   * key's steps, each {step, edges, counts, nonfinite}, drawn as bars with a step slider; `data-plot`
   * one chart: {type: "xy"} lines or points on one sorted x column, {type: "bins"} a histogram,
   * {type: "bars"} one bar per label. Confusion matrices are plain HTML tables. */
  var media = (window.runwatchMedia = {});

  function axis(label, extra) {
    var found = {stroke: css("--muted"), grid: {stroke: css("--line")}, label: label || null, labelSize: label ? 20 : 0};
    Object.keys(extra || {}).forEach(function (k) { found[k] = extra[k]; });
    return found;
  }

  function fromZero(u, lo, hi) {
    var top = Math.max(0, hi === null ? 0 : hi);
    return [Math.min(0, lo === null ? 0 : lo), top > 0 ? top * 1.05 : 1];
  }

  /* A histogram as a stepped line over the bin edges: bin i spans edges[i]..edges[i+1] at counts[i]. */
  function binColumns(spec) {
    var counts = spec.counts.slice();
    counts.push(counts.length ? counts[counts.length - 1] : 0);
    return [spec.edges.slice(), counts];
  }

  function mediaOptions(spec, width) {
    var color = PALETTE[0];
    var opts = {width: width, height: 220, legend: {show: false}, cursor: {drag: {x: true, y: false, setScale: true}}};
    if (spec.type === "bins") {
      opts.series = [{label: spec.x_label || "value"},
                     {label: spec.y_label || "count", stroke: color, fill: color + "59", width: 1,
                      paths: uPlot.paths.stepped({align: 1}), points: {show: false}}];
      opts.scales = {x: {time: false}, y: {range: fromZero}};
      opts.axes = [axis(spec.x_label), axis(spec.y_label, {size: 60})];
      return {opts: opts, data: binColumns(spec)};
    }
    if (spec.type === "bars") {
      var n = spec.labels.length, index = [];
      for (var i = 0; i < n; i++) index.push(i);
      opts.series = [{label: spec.x_label || "label", value: function (u, v) { return v === null ? "" : spec.labels[v]; }},
                     {label: spec.y_label || "value", stroke: color, fill: color + "99", width: 1,
                      paths: uPlot.paths.bars({size: [0.7, 80]}), points: {show: false}}];
      opts.scales = {x: {time: false, range: function () { return [-0.5, n - 0.5]; }}, y: {range: fromZero}};
      opts.axes = [axis(spec.x_label, {splits: function () { return index; },
                                       values: function (u, splits) { return splits.map(function (s) { return spec.labels[s] || ""; }); }}),
                   axis(spec.y_label, {size: 60})];
      opts.cursor = {drag: {x: false, y: false}};
      return {opts: opts, data: [index, spec.values]};
    }
    // "xy": lines (spanning the nulls where other series have their points) or points only.
    var points = spec.mode === "points";
    opts.legend = {show: spec.series.length > 1, live: false};
    opts.series = [{label: spec.x_label || "x"}].concat(spec.series.map(function (s, i) {
      var c = PALETTE[i % PALETTE.length];
      return {label: s.label, stroke: c, width: 1.5, spanGaps: true,
              paths: points ? function () { return null; } : undefined,
              points: points ? {show: true, size: 5, stroke: c, fill: c} : {show: false}};
    }));
    opts.scales = {x: {time: false}};
    opts.axes = [axis(spec.x_label), axis(spec.y_label, {size: 60})];
    if (spec.diagonal) {
      opts.hooks = {draw: [function (u) {  // chance level of a ROC curve
        var ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = css("--muted"); ctx.lineWidth = devicePixelRatio;
        ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
        ctx.beginPath(); ctx.moveTo(u.valToPos(0, "x", true), u.valToPos(0, "y", true));
        ctx.lineTo(u.valToPos(1, "x", true), u.valToPos(1, "y", true)); ctx.stroke();
        ctx.restore();
      }]};
    }
    return {opts: opts, data: [spec.xs].concat(spec.series.map(function (s) { return s.ys; }))};
  }

  function drawMediaPlot(el, spec) {
    var target = el.querySelector(".plot");
    var made = mediaOptions(spec, Math.max(240, target.clientWidth || el.clientWidth - 16));
    made.opts.hooks = made.opts.hooks || {};
    made.opts.hooks.draw = (made.opts.hooks.draw || []).concat([function () {
      el.dataset.drawn = String(Number(el.dataset.drawn || 0) + 1);
    }]);
    target.textContent = "";
    return new uPlot(made.opts, made.data, target);
  }

  function nonFiniteText(counts) {
    var parts = Object.keys(counts || {}).map(function (k) { return counts[k] + " × " + k; });
    return parts.length ? parts.join(", ") + " left out of the bins" : "";
  }

  function drawHistogram(el) {
    var steps = JSON.parse(el.dataset.histogram || "[]");
    if (!steps.length) return;
    var slider = el.querySelector('input[type="range"]');
    var label = el.querySelector(".step-label"), note = el.querySelector(".nonfinite-note");
    var show = function (i) {
      var step = steps[i], spec = {type: "bins", edges: step.edges, counts: step.counts, y_label: "count"};
      if (label) label.textContent = "step " + step.step;
      if (note) note.textContent = nonFiniteText(step.nonfinite);
      el.dataset.step = String(step.step);
      if (media[el.id]) media[el.id].setData(binColumns(spec));
      else media[el.id] = drawMediaPlot(el, spec);
    };
    show(steps.length - 1);
    if (slider) slider.addEventListener("input", function () { show(Number(slider.value)); });
  }

  function drawMedia(container) {
    if (!container) return;
    container.querySelectorAll(".media-plot").forEach(function (el) {
      try {
        if (el.dataset.histogram) drawHistogram(el);
        else if (el.dataset.plot) media[el.id] = drawMediaPlot(el, JSON.parse(el.dataset.plot));
      } catch (err) {
        el.dataset.error = String(err);
        console.error(err);
      }
    });
  }

  /* An alert's chart that does not exist after all (its run stored no point of the metric) leaves a note
   * where its image would be, never a broken image. Errors do not bubble: listen in the capture phase,
   * and look once more at load for images that failed before this script ran. */
  function noChart(img) {
    var note = document.createElement("span");
    note.className = "muted no-chart";
    note.textContent = "no chart";
    (img.closest("a.alert-chart") || img).replaceWith(note);
  }

  document.addEventListener("error", function (event) {
    var img = event.target;
    if (img instanceof HTMLImageElement && img.classList.contains("alert-chart")) noChart(img);
  }, true);

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("img.alert-chart").forEach(function (img) {
      if (img.complete && img.naturalWidth === 0) noChart(img);
    });
    drawMedia(document.getElementById("media"));  // synchronous: drawn before charts-drawn is set
    var run = document.getElementById("charts");
    if (run) setup(run, function () { return [{label: "value", url: run.dataset.seriesUrl}]; });
    var compare = document.getElementById("compare");
    if (compare) {
      var runs = JSON.parse(compare.dataset.runs || "[]");
      setup(compare, function () { return runs.map(function (r) { return {label: r.name, url: r.series_url}; }); });
    }
    if (!run && !compare) document.body.dataset.chartsDrawn = "0";
    else if (pending === 0) markDone();  // no metric charts to wait for (a run that logged only media)
  });
})();
