// A market's charts, drawn with uPlot (vendored from npm, MIT, see /assets/uPlot.LICENSE)
// from the API's market report (its daily snapshots and price-per-sqft distribution): one
// chart per question a buyer or an investor asks. The dashboard and the offline report of
// `make demo` both draw with this file.
"use strict";

const Charts = (() => {
  const HEIGHT = 220;
  const DAY = 86400;

  // A daily snapshot's period ("2026-11-21") as uPlot's x value: seconds since the epoch.
  function daySeconds(period) {
    const [y, m, d] = period.split("-").map(Number);
    return Date.UTC(y, m - 1, d) / 1000;
  }

  // What each chart shows, in words for someone who is not an engineer.
  function specs(report) {
    const daily = report.daily;
    const days = daily.map((s) => daySeconds(s.period));
    const pick = (name) => daily.map((s) => s.figures[name] ?? null);
    // The moving averages the pipeline stored with each day. Days written before it stored
    // them (older data) have no `trends`: their points are left empty, not worked out here.
    const stored = (name) => daily.map((s) => s.trends?.[name] ?? null);
    // Absent from an API that does not give it yet (unlike an empty one: no known sizes).
    const distribution = report.price_per_sqft_distribution;
    const units = unitsOf(report.market, report.units);
    const cash = money(units.currency);
    const area = perArea(units);
    const pickArea = (name) => pick(name).map((v) => inArea(v, area));
    return [
      {
        id: "price",
        title: "Median asking price",
        explain: "Half the homes for sale ask less than this. The averages smooth out day-to-day noise.",
        format: money(units.currency, true),
        series: [
          { label: "Median price", stroke: "#1f6feb", width: 2, values: pick("median_price") },
          { label: "7-day average", stroke: "#f79009", values: stored("median_price_ma_7d") },
          { label: "30-day average", stroke: "#7a5af8", values: stored("median_price_ma_30d") },
        ],
      },
      {
        id: "inventory",
        title: "Homes on the market",
        explain: "For sale: homes anyone can make an offer on. Under contract: an offer was accepted.",
        format: fmt.count,
        series: [
          { label: "For sale", stroke: "#1f6feb", width: 2, values: pick("active_listings") },
          { label: "Under contract", stroke: "#f79009", width: 2, values: pick("pending_listings") },
        ],
      },
      {
        id: "activity",
        title: "New listings and price cuts per day",
        explain: "Many cuts and few new listings often mean sellers are giving in to buyers.",
        format: fmt.count,
        bars: true,
        series: [
          { label: "New listings", stroke: "#067647", fill: "#06764799", values: pick("new_listings_today"), align: -1 },
          { label: "Price cuts", stroke: "#b42318", fill: "#b4231899", values: pick("price_cuts_today"), align: 1 },
        ],
      },
      {
        id: "sqft",
        title: "Median price per " + area.name,
        explain: "Compares homes of different sizes. Listings outside the dashed lines are unusual for this market.",
        format: cash,
        series: [
          { label: "Median per " + area.label, stroke: "#1f6feb", width: 2, values: pickArea("median_price_per_sqft") },
          // A bound at or below zero means no listing can be unusually cheap: not drawn.
          { label: "Unusually cheap below", stroke: "#98a2b3", dash: [6, 4], values: pickArea("price_per_sqft_anomaly_below").map((v) => (v != null && v > 0 ? v : null)) },
          { label: "Unusually dear above", stroke: "#98a2b3", dash: [6, 4], values: pickArea("price_per_sqft_anomaly_above") },
        ],
      },
      {
        id: "days-on-market",
        title: "Median days on the market",
        explain: "How long homes for sale have been listed. Rising means homes sell more slowly.",
        format: fmt.days,
        series: [
          { label: "Median days", stroke: "#7a5af8", width: 2, values: pick("median_days_on_market") },
        ],
      },
      {
        id: "distribution",
        title: "Homes for sale by price per " + area.name,
        explain: "How many homes for sale ask each price per " + area.name + " now. A long tail to the right means a few very dear homes.",
        empty: distribution ? "No home for sale has a known size yet." : "Not available from this API.",
        format: fmt.count,
        x: {
          values: (distribution || []).map((b) => inArea(b.price_per_sqft, area)),
          label: "Price per " + area.label,
          format: cash,
        },
        bars: true,
        series: [
          { label: "Homes for sale", stroke: "#1f6feb", fill: "#1f6feb99", values: (distribution || []).map((b) => b.listings) },
        ],
      },
    ].map((chart) => ({ days, ...chart }));
  }

  // Per container (the report draws one per market): its plots and its resize observer.
  const drawn = new WeakMap();

  function widthOf(element) {
    return Math.max(240, Math.floor(element.clientWidth));
  }

  // uPlot's options for one chart: a time axis of days, or (the distribution) an axis of
  // the chart's own values.
  function options(chart, width) {
    const x = chart.x;
    const bars = chart.bars && uPlot.paths.bars;
    return {
      width,
      height: HEIGHT,
      scales: {
        // Half a day either side of a bar chart's days: its first and last bars whole.
        x: x ? { time: false } : bars ? { time: true, range: (u, min, max) => [min - DAY / 2, max + DAY / 2] } : { time: true },
        // Bars are counts: they stand on zero.
        ...(bars ? { y: { range: (u, min, max) => [0, uPlot.rangeNum(0, Math.max(max, 1), 0.1, true)[1]] } } : {}),
      },
      // Days are midnight UTC: ticks fall on whole days, labelled as the days they are.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      axes: [
        x
          ? { values: (u, ticks) => ticks.map((v) => x.format.format(v)) }
          : { incrs: [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY], values: (u, ticks) => ticks.map((v) => fmt.dayShort.format(new Date(v * 1000))) },
        // As wide as its longest label ("MAD 30,000" is wider than "$300"), at least 70 px.
        { size: (u, values) => Math.max(70, 14 + 7 * Math.max(0, ...(values || []).map((v) => String(v).length))), values: (u, ticks) => ticks.map((v) => chart.format.format(v)) },
      ],
      series: [
        x
          ? { label: x.label, value: (u, v) => (v == null ? "" : x.format.format(v)) }
          : { label: "Day", value: (u, v) => (v == null ? "" : fmt.day.format(new Date(v * 1000))) },
        ...chart.series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          fill: s.fill,
          width: s.width ?? 1.5,
          dash: s.dash,
          spanGaps: true,
          points: { show: !bars && s.values.length < 3 },
          paths: bars ? bars({ size: [x ? 0.9 : 0.4, 24], align: s.align }) : undefined,
          value: (u, v) => (v == null ? "–" : chart.format.format(v)),
        })),
      ],
    };
  }

  // Draws every chart of a market's report (`/markets/{m}`) into `container`, replacing
  // what was there; returns how many were drawn.
  function draw(container, report) {
    const before = drawn.get(container);
    before?.plots.forEach((p) => p.destroy());
    before?.observer.disconnect();
    const plots = [];
    container.replaceChildren();
    for (const chart of specs(report)) {
      const box = document.createElement("figure");
      box.className = "chart";
      box.id = "chart-" + chart.id;
      box.style.margin = "0";
      const title = document.createElement("h3");
      title.textContent = chart.title;
      const explain = document.createElement("p");
      explain.className = "quiet";
      explain.textContent = chart.explain;
      const plotArea = document.createElement("div");
      box.append(title, explain, plotArea);
      container.appendChild(box);
      const xs = chart.x ? chart.x.values : chart.days;
      if (xs.length === 0) {
        plotArea.className = "empty";
        plotArea.textContent = chart.empty || "No figures yet.";
        continue;
      }
      const data = [xs, ...chart.series.map((s) => s.values)];
      // How many values the chart draws, for a test to read (the canvas cannot tell).
      box.dataset.points = String(chart.series.reduce((n, s) => n + s.values.filter((v) => v != null).length, 0));
      plots.push(new uPlot(options(chart, widthOf(plotArea)), data, plotArea));
    }
    // Resized on the next frame, and only when the width changed: resizing inside the
    // observer's callback would start another round of it.
    const observer = new ResizeObserver(() => {
      requestAnimationFrame(() => {
        for (const p of plots) {
          const width = widthOf(p.root.parentElement);
          if (width !== p.width) {
            p.setSize({ width, height: HEIGHT });
          }
        }
      });
    });
    observer.observe(container);
    drawn.set(container, { plots, observer });
    return plots.length;
  }

  return { draw, specs, daySeconds };
})();
