//! forge as a library: three in-process agents on a sample repository, the last one running
//! `git status` inside its view. `cargo run -p forge-examples --example embed`

#![forbid(unsafe_code)]

use forge_examples::run_embedded;

#[tokio::main]
async fn main() -> Result<(), forge_examples::DemoError> {
    let report = run_embedded().await?;
    for (task, outcome) in report.outcome.run.iter() {
        println!("{:<10} {outcome}", task.id);
    }
    println!(
        "staging: {} ({})",
        report.outcome.backend.0, report.outcome.backend.1
    );
    print!(
        "{}",
        std::fs::read_to_string(report.repo.join("REVIEW.md"))?
    );
    if !report.outcome.is_success() {
        std::process::exit(1);
    }
    Ok(())
}
