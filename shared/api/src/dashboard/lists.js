// The listings of interest and the alerts as rows in plain words, from the API's JSON
// (`/markets/{m}/listings`, `/alerts`): shared by the dashboard and the offline report.
"use strict";

const Lists = (() => {
  // The three lists of a market, in the order the page shows them.
  const KINDS = [
    { kind: "price_cut", title: "Latest price cuts", empty: "No price cuts seen lately." },
    { kind: "undervalued", title: "Priced low for their size", empty: "No listing is priced well under the market's typical price for its size." },
    { kind: "anomalous", title: "Unusual price for their size", empty: "No listing has an unusual price for its size." },
  ];

  const day = (when) => (when ? fmt.dayMonth.format(new Date(when)) : "");

  // A listing's or an alert's amounts in its own currency, its sizes in its market's unit.
  const cashOf = (x) => money(x.currency || unitsOf(x.market).currency);
  const areaOf = (x) => perArea(unitsOf(x.market));

  // "2 beds · 2 baths · 1,200 sq ft" (or "· 110 m²"), leaving out what the source does not say.
  function sizeText(x) {
    const parts = [];
    if (x.beds != null) {
      parts.push(fmt.count.format(x.beds) + (x.beds === 1 ? " bed" : " beds"));
    }
    if (x.baths != null) {
      parts.push(fmt.decimal.format(x.baths) + (x.baths === 1 ? " bath" : " baths"));
    }
    if (x.living_area_sqft != null) {
      const area = areaOf(x);
      parts.push(fmt.count.format(x.living_area_sqft / area.perSqft) + " " + area.label);
    }
    return parts.join(" · ");
  }

  // Why a listing is on its list: "cut 6 % from $480,000 on 21 Nov".
  function reason(kind, l) {
    const ratio = l.price_per_sqft_to_median;
    switch (kind) {
      case "price_cut":
        if (l.cut_pct != null && l.previous_price != null) {
          return "cut " + fmt.cut.format(l.cut_pct / 100) + " from " + cashOf(l).format(l.previous_price) + " on " + day(l.observed_at);
        }
        return "price cut on " + day(l.observed_at);
      case "undervalued":
        if (ratio != null && ratio < 1) {
          return "price per " + areaOf(l).label + " " + fmt.percent.format(1 - ratio) + " under the market's typical";
        }
        return "priced low for its size";
      case "anomalous": {
        const which = l.anomaly === "low" ? "low" : "high";
        const area = areaOf(l);
        const typical = l.market_median_price_per_sqft;
        const detail = l.price_per_sqft != null && typical != null
          ? " (" + cashOf(l).format(inArea(l.price_per_sqft, area)) + " against a typical " + cashOf(l).format(inArea(typical, area)) + ")"
          : "";
        return "unusually " + which + " price per " + area.label + detail;
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
    a.rel = "noopener noreferrer";
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
      ul.appendChild(row(addressOf(l), cashOf(l).format(l.price), reason(kind, l), details));
    }
    if (listings.length === 0) {
      ul.appendChild(el("li", "empty", (KINDS.find((k) => k.kind === kind) || {}).empty || "None."));
    }
  }

  // What an alert says: "Price cut 6.3 % to $450,000 (was $480,000)".
  function alertWords(a) {
    const cash = cashOf(a);
    const area = areaOf(a);
    // A big cut (`price_drop`, past the stack's threshold) and a smaller one (`price_cut`,
    // for watchlists) read alike.
    if (a.alert_type === "price_drop" || a.alert_type === "price_cut") {
      return "Price cut " + fmt.cut.format(a.drop_pct / 100) + " to " +
        cash.format(a.new_price) + " (was " + cash.format(a.old_price) + ")";
    }
    if (a.alert_type === "back_on_market") {
      return "Back on the market at " + cash.format(a.new_price) +
        " (was " + cash.format(a.old_price) + ")";
    }
    if (a.alert_type === "new_listing") {
      return "New listing at " + cash.format(a.new_price) + (a.beds != null ? ", " + a.beds + " bedrooms" : "");
    }
    if (a.alert_type === "anomaly") {
      const ratio = a.price_per_sqft_to_median;
      const side = ratio == null ? "unusual" : ratio < 1 ? "unusually cheap" : "unusually dear";
      const detail = a.price_per_sqft != null && a.market_median_price_per_sqft != null
        ? ": " + cash.format(inArea(a.price_per_sqft, area)) + " a " + area.label + " against " + cash.format(inArea(a.market_median_price_per_sqft, area))
        : "";
      return "Asks " + cash.format(a.new_price) + ", " + side + " for the market" + detail;
    }
    if (a.alert_type === "undervalued") {
      const ratio = a.price_per_sqft_to_median;
      const under = ratio != null && ratio < 1 ? fmt.percent.format(1 - ratio) + " under" : "under";
      const detail = a.price_per_sqft != null && a.market_median_price_per_sqft != null
        ? ": " + cash.format(inArea(a.price_per_sqft, area)) + " against " + cash.format(inArea(a.market_median_price_per_sqft, area))
        : "";
      return (a.new_listing ? "New listing: asks " : "Asks ") + cash.format(a.new_price) +
        ", a price per " + area.label + " " + under + " the market's typical" + detail;
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
