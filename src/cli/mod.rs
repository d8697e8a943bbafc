//! The `clipforge` command line. Binaries call [`main`]; each command is a
//! short function here, most of them API clients.
//!
//! Exit codes scripts can rely on: 0 success; 1 the job failed or was
//! cancelled; 2 bad usage or invalid input (settings, spec, file); 3 the
//! server or a dependency could not be reached; 4 no such job, account or key.

mod accounts;
mod batch;
mod bench;
mod bench_api;
mod bench_hops;
mod bench_load;
mod bench_segments;
mod client;
mod demo;
mod jobs;
mod keys;
pub mod sse;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{Application, Roles, shutdown_signal};
use crate::domain::Stage;
use crate::settings::Settings;

pub use client::{Client, ClientError};

#[derive(Debug, Parser)]
#[command(name = "clipforge", version, about = "Turns short-video requests into staged MP4s and TikTok drafts.")]
pub struct Cli {
    /// Settings file layered over the defaults (env: CLIPFORGE_CONFIG).
    #[arg(long, global = true, env = "CLIPFORGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// API key sent by `submit` and `jobs` to a server that asks for keys
    /// (env: CLIPFORGE_API_KEY); see `clipforge keys create`.
    #[arg(long, global = true, env = "CLIPFORGE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and every worker role in one process (embedded mode).
    Serve,
    /// Run only the HTTP API.
    Api,
    /// Run the workers of one role.
    Worker {
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Submit the job in FILE (JSON) to the API; a batch file (.csv, .jsonl,
    /// .ndjson, or a .json array) goes to /v1/batches as many jobs.
    Submit {
        file: PathBuf,
        /// Follow the job (or the whole batch) with a progress bar until it ends.
        #[arg(long)]
        wait: bool,
        /// API address (default: server.url from settings).
        #[arg(long, env = "CLIPFORGE_SERVER")]
        server: Option<String>,
    },
    /// Look at and steer jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
        #[arg(long, env = "CLIPFORGE_SERVER", global = true)]
        server: Option<String>,
    },
    /// Connect, list and disconnect TikTok accounts (works on the record store
    /// directly, with this machine's settings: run it where the server's
    /// settings and token key are).
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Make, list and revoke API keys (works on the record store directly, with
    /// this machine's settings: run it where the server's settings are).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Everything the server holds (jobs, manifests, batches, accounts without
    /// tokens, API keys' metadata) as one JSON document (needs an admin key
    /// when keys are on).
    Export {
        /// Write it here instead of to stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// API address (default: server.url from settings).
        #[arg(long, env = "CLIPFORGE_SERVER")]
        server: Option<String>,
    },
    /// Serve clipforge's tools to an AI agent over MCP on stdin/stdout (the
    /// agent starts this command). Each tool calls the API at --server with
    /// the key of CLIPFORGE_API_KEY, so the key's scopes apply; see docs/mcp.md.
    Mcp {
        /// API address (default: server.url from settings).
        #[arg(long, env = "CLIPFORGE_SERVER")]
        server: Option<String>,
    },
    /// Render the bundled sample job end to end in embedded mode; prints the MP4's path last.
    Demo,
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Jobs, newest first.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One job in full (JSON).
    Show { id: String },
    /// Retry a failed job from the stage that failed.
    Retry { id: String },
    /// Cancel a job that has not finished.
    Cancel { id: String },
    /// Erase an ended job for good: its records, files, queue tasks and the
    /// cache objects no other job uses (needs an admin key when keys are on).
    Purge {
        id: String,
        /// Confirm; without it nothing is erased.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Connect an account from this machine: opens (or prints) the
    /// platform's consent page and waits for it on 127.0.0.1 (desktop flow
    /// with PKCE).
    Connect {
        /// `tiktok` (the default) or `youtube`.
        #[arg(long, default_value = "tiktok")]
        platform: String,
        /// Only print the URL; do not try to open a browser.
        #[arg(long)]
        no_browser: bool,
        /// Give up after this many seconds without an answer.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Connected accounts (tokens masked).
    List,
    /// Revoke the grant at TikTok and delete the account's tokens.
    Disconnect { id: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key; prints it once on stdout (only its hash is stored).
    Create {
        /// Who or what the key is for, e.g. `ci` or `zapier`.
        #[arg(long)]
        name: String,
        /// Comma-separated: jobs:read, jobs:write, jobs:review, accounts, admin (admin may do everything).
        #[arg(long)]
        scopes: String,
        #[command(flatten)]
        notify: KeyTargets,
    },
    /// Every key with its scopes, usage, targets and revocation (JSON; never the key).
    List,
    /// Revoke a key: it is refused from the next request on.
    Revoke { id: String },
    /// Set where the jobs submitted with a key are announced (replacing what
    /// was set; give no target to go back to the `[notify]` settings).
    Notify {
        id: String,
        #[command(flatten)]
        notify: KeyTargets,
    },
}

/// A key's notification targets: used by the jobs submitted with the key
/// that name none of their own (the job's own `notify` wins, then these,
/// then the team-wide `[notify]` settings).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyTargets {
    /// Telegram chat for the key's jobs: a numeric chat id or @channelname.
    #[arg(long)]
    pub telegram_chat_id: Option<String>,
    /// URL that receives the key's jobs' events as signed JSON.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Also announce the key's jobs when they are queued.
    #[arg(long)]
    pub notify_on_queued: bool,
}

/// Reads `--transition` the way a job's `caption_style.transition` is read.
fn parse_transition(raw: &str) -> Result<crate::domain::Transition, String> {
    crate::domain::Transition::parse(raw)
        .ok_or_else(|| format!("`{raw}` is not a transition; one of {}", crate::domain::Transition::names()))
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Our render of a job vs one hand-written ffmpeg command on the same inputs.
    Render {
        /// Length of the benchmark video, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// How clips are joined: cut, crossfade, slide or zoom.
        #[arg(long, default_value = "cut", value_parser = parse_transition)]
        transition: crate::domain::Transition,
        /// How many footage slots show a still image (Ken Burns) instead of a clip.
        #[arg(long, default_value_t = 0)]
        stills: usize,
        /// The footage: `landscape` (1920x1080 camera-like clips), `portrait`
        /// (1080x1920) or `generated` (the embedded mode's 720x1280 test clips).
        #[arg(long, value_enum, default_value_t = bench::SourceShape::Landscape)]
        source: bench::SourceShape,
        /// Also render from prepared footage: each clip normalised once to
        /// 1080x1920, 30 fps, yuv420p first (that time printed too).
        #[arg(long)]
        prepared: bool,
        /// Rounds of the three renders (ours, naive, crop first), each round
        /// starting with a different one; the summary gives medians.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
    },
    /// Stage a large file through the configured object store; prints speed and peak memory.
    Stage {
        /// Size of the file, in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mb: u64,
    },
    /// Queue hop latency (task queued → worker started) on the embedded queue
    /// and Redis, beside heartbeat-only delivery; then one 4 s offline job
    /// end to end.
    Hops {
        /// Hops measured per queue with push delivery.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Hops measured per queue without it (each waits for a heartbeat).
        #[arg(long, default_value_t = 4)]
        baseline: usize,
    },
    /// Post a generated CSV batch to an API started in this process (no
    /// workers); prints jobs accepted per second next to single submissions.
    Batch {
        /// Lines (jobs) in the batch.
        #[arg(long, default_value_t = 10_000)]
        lines: usize,
    },
    /// Single submissions per second from many connections to an API started
    /// in this process (no workers), with group commits and without; then one
    /// large batch.
    Api {
        /// Seconds of load for each of the two runs.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Connections sending at once, each one submission after the other.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Lines (jobs) in the batch posted afterwards.
        #[arg(long, default_value_t = 20_000)]
        lines: usize,
    },
    /// One long job rendered in segments by 1 and 2 render worker processes
    /// (and 4 on 8 cores or more), each pinned to a core of its own with
    /// `taskset` and one ffmpeg thread; prints each wall time and its ratio
    /// to 1 worker's (target: 2 workers <= 0.6).
    Segments {
        /// Length of the benchmark video, in seconds.
        #[arg(long, default_value_t = 180)]
        seconds: u32,
        /// Render worker counts to measure (1, the baseline, always is).
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        workers: Vec<usize>,
    },
    /// Scripts of one-word lines against the configured limits: each is
    /// refused (its codes printed) or rendered, with its ffmpeg's peak memory
    /// and threads printed beside the bound.
    Cost {
        /// Lines in each script, one word a line.
        #[arg(long, value_delimiter = ',', default_value = "200,1500")]
        lines: Vec<usize>,
        /// The peak resident memory one render may reach, in MiB.
        #[arg(long, default_value_t = 1024)]
        bound_mb: u64,
    },
}

/// A worker role on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    Prepare,
    Render,
    Publish,
}

impl From<Role> for Stage {
    fn from(r: Role) -> Self {
        match r {
            Role::Prepare => Stage::Prepare,
            Role::Render => Stage::Render,
            Role::Publish => Stage::Publish,
        }
    }
}

/// Exit codes, as documented at the top of this module.
pub mod exit {
    pub const JOB_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    /// The job stopped for a person: `in_review` or `changes_requested`.
    pub const IN_REVIEW: u8 = 5;
}

fn load_settings(cli_config: Option<&std::path::Path>) -> Result<Settings, ExitCode> {
    Settings::load(cli_config).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(exit::USAGE)
    })
}

/// Builds and runs a server process with `roles` until SIGINT/SIGTERM.
async fn run_server(settings: Settings, roles: Roles) -> ExitCode {
    let app = match Application::build(settings, roles).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::UNREACHABLE);
        }
    };
    let stop = app.shutdown_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing the work in hand");
        stop.cancel();
    });
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::UNREACHABLE)
        }
    }
}

/// Runs the worker role `role` (the `workers/` binaries call this).
pub async fn worker_main(role: Role) -> ExitCode {
    crate::telemetry::init();
    let settings = match load_settings(std::env::var_os("CLIPFORGE_CONFIG").map(PathBuf::from).as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    run_server(settings, Roles { api: false, stages: vec![role.into()] }).await
}

/// The `clipforge` binary.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init();
    let settings = match load_settings(cli.config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match cli.command {
        Command::Serve => run_server(settings, Roles::all()).await,
        Command::Api => run_server(settings, Roles { api: true, stages: vec![] }).await,
        Command::Worker { role } => run_server(settings, Roles { api: false, stages: vec![role.into()] }).await,
        Command::Submit { file, wait, server } => {
            let client =
                Client::new(server.unwrap_or_else(|| settings.server.url.clone())).with_api_key(cli.api_key.as_deref());
            jobs::submit_file(&client, &file, wait).await
        }
        Command::Jobs { command, server } => {
            let client =
                Client::new(server.unwrap_or_else(|| settings.server.url.clone())).with_api_key(cli.api_key.as_deref());
            jobs::jobs(&client, command).await
        }
        Command::Export { out, server } => {
            let client =
                Client::new(server.unwrap_or_else(|| settings.server.url.clone())).with_api_key(cli.api_key.as_deref());
            jobs::export(&client, out.as_deref()).await
        }
        Command::Accounts { command } => accounts::run(settings, command).await,
        Command::Keys { command } => keys::run(settings, command).await,
        Command::Mcp { server } => {
            let server = server.unwrap_or_else(|| settings.server.url.clone());
            let api = crate::mcp::Api::remote(&server, cli.api_key.as_deref());
            match crate::mcp::serve_stdio(api).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(exit::UNREACHABLE)
                }
            }
        }
        Command::Demo => demo::run(settings).await,
        Command::Bench { command: BenchCommand::Render { seconds, transition, stills, source, prepared, runs } } => {
            bench::render(settings, seconds, transition, stills, source, prepared, runs).await
        }
        Command::Bench { command: BenchCommand::Stage { size_mb } } => bench::stage(settings, size_mb).await,
        Command::Bench { command: BenchCommand::Batch { lines } } => bench::batch(settings, lines).await,
        Command::Bench { command: BenchCommand::Api { seconds, connections, lines } } => {
            bench_api::api(settings, seconds.clamp(1, 300), connections.clamp(1, 1024), lines).await
        }
        Command::Bench { command: BenchCommand::Hops { count, baseline } } => {
            bench_hops::hops(settings, count, baseline).await
        }
        Command::Bench { command: BenchCommand::Segments { seconds, workers } } => {
            bench_segments::segments(settings, cli.config.clone(), seconds, workers).await
        }
        Command::Bench { command: BenchCommand::Cost { lines, bound_mb } } => {
            bench::cost(settings, &lines, bound_mb).await
        }
    }
}
