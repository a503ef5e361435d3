use std::process::ExitCode;

use ticketing_app::cli::{self, Command};

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let command = match Command::parse(&arguments) {
        Ok(command) => command,
        Err(usage) => {
            eprintln!("{usage}");
            return if arguments
                .iter()
                .any(|a| a == "--help" || a == "-h" || a == "help")
            {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match cli::run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ticketing: {error:#}");
            ExitCode::FAILURE
        }
    }
}
