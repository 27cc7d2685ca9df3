use clap::Parser;

use samverkan::cli::{self, Cli};
use samverkan::config::Settings;

#[actix_web::main]
async fn main() {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(2);
        }
    };
    samverkan::telemetry::init(settings.json_logs);
    let code = match cli::run(cli, settings).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
