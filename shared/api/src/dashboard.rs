//! The dashboard: a page and its assets, built into the binary so the stack serves them
//! itself (no CDN, no external font). They read the API with the bearer token the person
//! gives the page once (kept in the browser's local storage). The offline report of `make
//! demo` inlines the same charts, formats and lists (cli/src/html).

/// One file the page needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

const fn asset(name: &'static str, content_type: &'static str, body: &'static str) -> Asset {
    Asset {
        name,
        content_type,
        body,
    }
}

/// Every file of the dashboard; `index.html` is served at `/`, the others at `/assets/NAME`
/// (one path segment, so the vendored files are named flat here though they sit in vendor/).
pub const ASSETS: &[Asset] = &[
    asset("index.html", HTML, include_str!("dashboard/index.html")),
    asset("style.css", CSS, include_str!("dashboard/style.css")),
    asset("format.js", JS, include_str!("dashboard/format.js")),
    asset("charts.js", JS, include_str!("dashboard/charts.js")),
    asset("lists.js", JS, include_str!("dashboard/lists.js")),
    asset("app.js", JS, include_str!("dashboard/app.js")),
    // uPlot 1.6.32 from npm (`npm pack uplot@1.6.32`, its dist/ and LICENSE), MIT: the charts.
    asset(
        "uPlot.iife.min.js",
        JS,
        include_str!("dashboard/vendor/uPlot.iife.min.js"),
    ),
    asset(
        "uPlot.min.css",
        CSS,
        include_str!("dashboard/vendor/uPlot.min.css"),
    ),
    asset(
        "uPlot.LICENSE",
        TEXT,
        include_str!("dashboard/vendor/uPlot.LICENSE"),
    ),
];

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// Each `/assets/NAME` the page loads is in the list (a missing one is a 404 in the
    /// browser and a page without charts).
    #[test]
    fn the_page_names_only_served_assets() {
        let page = ASSETS
            .iter()
            .find(|a| a.name == "index.html")
            .map(|a| a.body)
            .unwrap_or_default();
        let named: Vec<&str> = page
            .split("/assets/")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(named.len(), 7, "{named:?}");
        for name in named {
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "{name} is not served"
            );
        }
    }
}
