//! The dashboard: a page and its assets, built into the binary so the stack serves them
//! itself (no CDN, no external font). They read the API with the bearer token the person
//! gives the page once (kept in the browser's local storage).

/// One file the page needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file of the dashboard; `index.html` is served at `/`, the others at `/assets/NAME`
/// (one path segment, so the vendored files are named flat here though they sit in vendor/).
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("dashboard/index.html"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/style.css"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/charts.js"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/app.js"),
    },
    // uPlot 1.6.32 from npm (`npm pack uplot@1.6.32`, dist/), MIT: the charts.
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/vendor/uPlot.min.css"),
    },
    Asset {
        name: "uPlot.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_str!("dashboard/vendor/uPlot.LICENSE"),
    },
];
