// The listings of interest and the alerts as rows in plain words, from the API's JSON
// (`/markets/{m}/listings`, `/alerts`): shared by the dashboard and the offline report.
"use strict";

const Lists = (() => {
  // The three lists of a market, in the order the page shows them.
  const KINDS = [
    { kind: "price_cut", title: "Latest price cuts", empty: "No price cuts seen lately." },
    { kind: "undervalued", title: "Priced low for their size", empty: "No listing is priced well under the market's typical price per square foot." },
    { kind: "anomalous", title: "Unusual price per square foot", empty: "No listing has an unusual price per square foot." },
  ];

  const day = (when) => (when ? fmt.dayMonth.format(new Date(when)) : "");

  // "2 beds · 2 baths · 1,200 sq ft", leaving out what the source does not say.
  function sizeText(x) {
    const parts = [];
    if (x.beds != null) {
      parts.push(fmt.count.format(x.beds) + (x.beds === 1 ? " bed" : " beds"));
    }
    if (x.baths != null) {
      parts.push(fmt.decimal.format(x.baths) + (x.baths === 1 ? " bath" : " baths"));
    }
    if (x.living_area_sqft != null) {
      parts.push(fmt.count.format(x.living_area_sqft) + " sq ft");
    }
    return parts.join(" · ");
  }

  // Why a listing is on its list: "cut 6 % from $480,000 on 21 Nov".
  function reason(kind, l) {
    const ratio = l.price_per_sqft_to_median;
    switch (kind) {
      case "price_cut":
        if (l.cut_pct != null && l.previous_price != null) {
          return "cut " + fmt.percent.format(l.cut_pct / 100) + " from " + fmt.money.format(l.previous_price) + " on " + day(l.observed_at);
        }
        return "price cut on " + day(l.observed_at);
      case "undervalued":
        if (ratio != null && ratio < 1) {
          return "price per sq ft " + fmt.percent.format(1 - ratio) + " under the market's typical";
        }
        return "priced low for its size";
      case "anomalous": {
        const which = l.anomaly === "low" ? "low" : "high";
        const typical = l.market_median_price_per_sqft;
        const detail = l.price_per_sqft != null && typical != null
          ? " (" + fmt.money.format(l.price_per_sqft) + " against a typical " + fmt.money.format(typical) + ")"
          : "";
        return "unusually " + which + " price per sq ft" + detail;
      }
      default:
        return "";
    }
  }

  // The address, linked to the listing's page at its source when there is one.
  function addressOf(x) {
    if (!x.url || !/^https?:\/\//.test(x.url)) {
      return el("span", "address", x.address);
    }
    const a = el("a", "address", x.address);
    a.href = x.url;
    a.target = "_blank";
    a.rel = "noopener";
    return a;
  }

  function row(head, price, words, size) {
    const li = el("li", "row");
    const top = el("div", "row-top");
    top.append(head, el("span", "price", price));
    li.append(top, el("span", "reason", words));
    if (size) {
      li.appendChild(el("span", "quiet", size));
    }
    return li;
  }

  // Fills `ul` with a list of interest's rows, or a sentence when it is empty.
  function fillListings(ul, kind, listings) {
    ul.replaceChildren();
    for (const l of listings) {
      // The yield an investor would gross at the market's rent for its size.
      const yieldText = l.gross_yield != null
        ? "rents for about " + fmt.percent.format(l.gross_yield) + " of its price a year"
        : "";
      const details = [sizeText(l), yieldText].filter((t) => t).join(" · ");
      ul.appendChild(row(addressOf(l), fmt.money.format(l.price), reason(kind, l), details));
    }
    if (listings.length === 0) {
      ul.appendChild(el("li", "empty", (KINDS.find((k) => k.kind === kind) || {}).empty || "None."));
    }
  }

  // What an alert says: "Price cut 6.3 % to $450,000 (was $480,000)".
  function alertWords(a) {
    // A big cut (`price_drop`, past the stack's threshold) and a smaller one (`price_cut`,
    // for watchlists) read alike.
    if (a.alert_type === "price_drop" || a.alert_type === "price_cut") {
      return "Price cut " + fmt.percent.format(a.drop_pct / 100) + " to " +
        fmt.money.format(a.new_price) + " (was " + fmt.money.format(a.old_price) + ")";
    }
    if (a.alert_type === "back_on_market") {
      return "Back on the market at " + fmt.money.format(a.new_price) +
        " (was " + fmt.money.format(a.old_price) + ")";
    }
    if (a.alert_type === "new_listing") {
      return "New listing at " + fmt.money.format(a.new_price) + (a.beds != null ? ", " + a.beds + " bedrooms" : "");
    }
    if (a.alert_type === "anomaly") {
      const ratio = a.price_per_sqft_to_median;
      const side = ratio == null ? "unusual" : ratio < 1 ? "unusually cheap" : "unusually dear";
      const detail = a.price_per_sqft != null && a.market_median_price_per_sqft != null
        ? ": " + fmt.money.format(a.price_per_sqft) + " a sq ft against " + fmt.money.format(a.market_median_price_per_sqft)
        : "";
      return "Asks " + fmt.money.format(a.new_price) + ", " + side + " for the market" + detail;
    }
    if (a.alert_type === "undervalued") {
      const ratio = a.price_per_sqft_to_median;
      const under = ratio != null && ratio < 1 ? fmt.percent.format(1 - ratio) + " under" : "under";
      const detail = a.price_per_sqft != null && a.market_median_price_per_sqft != null
        ? ": " + fmt.money.format(a.price_per_sqft) + " against " + fmt.money.format(a.market_median_price_per_sqft)
        : "";
      return (a.new_listing ? "New listing: asks " : "Asks ") + fmt.money.format(a.new_price) +
        ", a price per sq ft " + under + " the market's typical" + detail;
    }
    return a.alert_type;
  }

  function fillAlerts(ul, alerts) {
    ul.replaceChildren();
    for (const a of alerts) {
      const when = a.observed_at ? fmt.dateTime.format(new Date(a.observed_at)) : "";
      const li = row(addressOf(a), when, alertWords(a), sizeText(a));
      li.dataset.type = a.alert_type;
      ul.appendChild(li);
    }
    if (alerts.length === 0) {
      ul.appendChild(el("li", "empty", "No alerts."));
    }
  }

  return { KINDS, reason, alertWords, fillListings, fillAlerts };
})();
