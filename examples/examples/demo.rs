//! The forge demo: a sample repository and a plan of scripted agents, run with live
//! progress. `cargo run --release -p forge-examples --example demo`

#![forbid(unsafe_code)]

use forge_examples::{DemoOptions, run_demo};

#[tokio::main]
async fn main() -> Result<(), forge_examples::DemoError> {
    let mut stdout = std::io::stdout();
    let report = run_demo(&DemoOptions::default(), &mut stdout).await?;
    if !report.outcome.is_success() {
        std::process::exit(1);
    }
    Ok(())
}
