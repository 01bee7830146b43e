//! `cairn-deploy slo-rules <slos.toml>`: prints the SLO recording rules generated from the
//! objectives file (see `cairn_deploy::slo`). Regenerate after editing the objectives:
//!
//! ```text
//! cargo run -p cairn-deploy -- slo-rules deploy/prometheus/slos.toml > deploy/prometheus/slo.rules.yml
//! ```

use anyhow::Context;
use cairn_deploy::slo::SloConfig;

fn main() {
    if let Err(e) = run() {
        eprintln!("cairn-deploy: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, path] = args.as_slice() else {
        anyhow::bail!("usage: cairn-deploy slo-rules <slos.toml>");
    };
    anyhow::ensure!(
        command == "slo-rules",
        "unknown command {command:?}; usage: cairn-deploy slo-rules <slos.toml>"
    );
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let config = SloConfig::parse(&text)?;
    print!("{}", config.recording_rules());
    Ok(())
}
