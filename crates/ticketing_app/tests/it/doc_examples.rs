//! The shell examples of README.md and docs/api.md run as written against a started server:
//! every ```sh block that calls curl, with the documented address replaced by the test
//! server's, and every curl failing on an HTTP error (`--fail-with-body`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::process::Command;

use support::TestApp;

const DOCUMENTED_BASE: &str = "http://127.0.0.1:8080";

const DOCUMENTS: [(&str, &str); 2] = [
    ("README.md", include_str!("../../../../README.md")),
    ("docs/api.md", include_str!("../../../../docs/api.md")),
];

/// The ```sh blocks of a Markdown text.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == "```sh" => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[tokio::test]
async fn the_curl_examples_of_the_readme_and_docs_api_md_run_as_written() {
    let app = TestApp::spawn().await;
    let mut ran = 0;
    for (document, markdown) in DOCUMENTS {
        for block in shell_blocks(markdown) {
            if !block.contains("curl ") {
                continue;
            }
            assert!(
                block.contains(DOCUMENTED_BASE),
                "{document}: an example that does not talk to {DOCUMENTED_BASE}:\n{block}"
            );
            let script = format!(
                "set -euo pipefail\n\
                 curl() {{ command curl --silent --show-error --fail-with-body \"$@\"; }}\n\
                 {}",
                block.replace(DOCUMENTED_BASE, &app.address)
            );
            let output = tokio::task::spawn_blocking(move || {
                Command::new("bash").arg("-c").arg(script).output()
            })
            .await
            .unwrap()
            .expect("running bash (and curl)");
            assert!(
                output.status.success(),
                "{document}: this example failed ({}):\n{block}\nstdout:\n{}\nstderr:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            ran += 1;
        }
    }
    assert!(ran >= 2, "only {ran} examples found");
}
