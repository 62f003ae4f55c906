//! `crdgen [DIR]`: writes one YAML file per Switchboard CRD into DIR (default `crds/`).

use std::{fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "crds".into()));
    fs::create_dir_all(&dir)?;
    for (file, yaml) in switchboard_api::crdgen::crd_files() {
        fs::write(dir.join(&file), yaml)?;
        println!("wrote {}", dir.join(&file).display());
    }
    Ok(())
}
