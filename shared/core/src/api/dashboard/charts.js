// A market's charts, drawn with uPlot (vendored from npm, MIT, see /assets/uPlot.LICENSE)
// from the API's daily snapshots: one chart per question a buyer or an investor asks.
"use strict";

const Charts = (() => {
  const DAY = 86400;

  // A daily snapshot's period ("2026-11-21") as uPlot's x value: seconds since the epoch.
  function daySeconds(period) {
    const [y, m, d] = period.split("-").map(Number);
    return Date.UTC(y, m - 1, d) / 1000;
  }

  // For each day, the mean of the values of the `window` calendar days ending on it (days
  // without a value left out), as the API computes its latest averages (`trends`): the API
  // gives only those latest values, so the page draws the series itself.
  function movingAverage(days, values, window) {
    return days.map((day, i) => {
      let sum = 0;
      let n = 0;
      for (let j = 0; j <= i; j++) {
        if (days[j] > day - window * DAY && values[j] != null) {
          sum += values[j];
          n += 1;
        }
      }
      return n === 0 ? null : sum / n;
    });
  }

  // What each chart shows, in words for someone who is not an engineer.
  function specs(daily, fmt) {
    const days = daily.map((s) => daySeconds(s.period));
    const pick = (name) => daily.map((s) => s.figures[name] ?? null);
    const price = pick("median_price");
    return {
      days,
      charts: [
        {
          id: "price",
          title: "Median asking price",
          explain: "Half the homes for sale ask less than this. The averages smooth out day-to-day noise.",
          format: fmt.moneyShort,
          series: [
            { label: "Median price", stroke: "#1f6feb", width: 2, values: price },
            { label: "7-day average", stroke: "#f79009", values: movingAverage(days, price, 7) },
            { label: "30-day average", stroke: "#7a5af8", values: movingAverage(days, price, 30) },
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
          title: "Median price per square foot",
          explain: "Compares homes of different sizes. Listings outside the dashed lines are unusual for this market.",
          format: fmt.money,
          series: [
            { label: "Median per sq ft", stroke: "#1f6feb", width: 2, values: pick("median_price_per_sqft") },
            // A bound at or below $0 means no listing can be unusually cheap: not drawn.
            { label: "Unusually cheap below", stroke: "#98a2b3", dash: [6, 4], values: pick("price_per_sqft_anomaly_below").map((v) => (v != null && v > 0 ? v : null)) },
            { label: "Unusually dear above", stroke: "#98a2b3", dash: [6, 4], values: pick("price_per_sqft_anomaly_above") },
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
      ],
    };
  }

  let plots = [];
  let observer = null;

  function widthOf(element) {
    return Math.max(240, Math.floor(element.clientWidth));
  }

  // Draws every chart into `container`, replacing what was there.
  function draw(container, daily, fmt) {
    plots.forEach((p) => p.destroy());
    plots = [];
    container.replaceChildren();
    const { days, charts } = specs(daily, fmt);
    for (const chart of charts) {
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
      const bars = chart.bars && uPlot.paths.bars;
      const options = {
        width: widthOf(plotArea),
        height: 220,
        scales: { x: { time: true } },
        axes: [
          {},
          { size: 70, values: (u, ticks) => ticks.map((v) => chart.format.format(v)) },
        ],
        series: [
          { label: "Day", value: (u, v) => (v == null ? "" : fmt.date.format(new Date(v * 1000))) },
          ...chart.series.map((s) => ({
            label: s.label,
            stroke: s.stroke,
            fill: s.fill,
            width: s.width ?? 1.5,
            dash: s.dash,
            spanGaps: true,
            points: { show: days.length < 3 },
            paths: bars ? bars({ size: [0.4, 24], align: s.align }) : undefined,
            value: (u, v) => (v == null ? "–" : chart.format.format(v)),
          })),
        ],
      };
      plots.push(new uPlot(options, [days, ...chart.series.map((s) => s.values)], plotArea));
    }
    observer?.disconnect();
    // Resized on the next frame, and only when the width changed: resizing inside the
    // observer's callback would start another round of it.
    observer = new ResizeObserver(() => {
      requestAnimationFrame(() => {
        for (const p of plots) {
          const width = widthOf(p.root.parentElement);
          if (width !== p.width) {
            p.setSize({ width, height: 220 });
          }
        }
      });
    });
    observer.observe(container);
    return charts.length;
  }

  return { draw, movingAverage, daySeconds };
})();
