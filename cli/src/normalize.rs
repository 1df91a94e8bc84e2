//! `realty normalize`: one saved API response in, canonical listings out.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use realty_model::markets::SourceKind;
use realty_sources::normalize_file;

pub fn run(
    source: SourceKind,
    file: &Path,
    observed_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<()> {
    let now = chrono::Utc::now();
    let observed_at = observed_at.unwrap_or(now);
    if observed_at > now {
        bail!(
            "--observed-at {} is in the future: a page cannot have been read then",
            observed_at.to_rfc3339()
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let page = match normalize_file(source, &bytes, observed_at) {
        Ok(page) => page,
        Err(e) => bail!("{}: {e}", file.display()),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for listing in &page.listings {
        serde_json::to_writer(&mut out, listing)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    for reject in &page.rejects {
        eprintln!("rejected {reject}");
    }
    eprintln!(
        "normalized {}, rejected {}",
        page.listings.len(),
        page.rejects.len()
    );
    Ok(())
}
