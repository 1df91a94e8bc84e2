//! `realty normalize`: one saved API response in, canonical listings out.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use realty_core::sources::{SourceKind, normalize_file};

pub fn run(source: SourceKind, file: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let page = match normalize_file(source, &bytes, chrono::Utc::now()) {
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
