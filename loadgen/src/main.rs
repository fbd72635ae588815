//! `chat-loadgen`: drives a chatd deployment with many WebSocket clients and REST readers,
//! measures latencies with HDR histograms and gives a verdict against the SPEC targets.
//!
//! Exit codes: 0 every target met and nothing lost; 1 a target missed, a message lost or
//! duplicated, or an error counted; 2 the run could not be carried out (bad arguments,
//! server unreachable).

mod args;
mod hostcpu;
mod media;
mod memory;
mod net;
mod pacer;
mod report;
mod rest;
mod run;
mod selfcheck;
mod setup;
mod shared;
mod socket;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chat-loadgen",
    version,
    about = "Load generator for chatd: sockets at scale, latency histograms, SLO verdicts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a load scenario against one or more chatd instances.
    Run(Box<args::RunArgs>),
    /// Upload one file many times as media messages: throughput, latency, peak RSS.
    Media(media::MediaArgs),
    /// Compare two `--json` results: B relative to A, per metric.
    Compare {
        /// The baseline result file.
        a: String,
        /// The result file to compare with the baseline.
        b: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Compare { a, b } => report::compare(&a, &b).map(|()| true),
        Command::Run(args) => {
            let realtime = !args.no_realtime;
            tokio::runtime::Builder::new_multi_thread()
                // The workers write what the pacer hands them: like the pacer thread they ask
                // for real-time scheduling, or on a host whose cores the server keeps busy each
                // hand-off waits milliseconds for a CPU (measured: p99 1.7-2.1 ms at 700 msg/s
                // with only the pacer real-time). Their CPU is reported and judged (over 0.9
                // cores the run is generator-limited), and the kernel's RT throttling keeps
                // a share for everyone else even if they spun.
                .on_thread_start(move || {
                    if realtime {
                        net::realtime_thread(net::WORKER_PRIORITY);
                    }
                })
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(run::run(*args)))
        }
        Command::Media(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(media::media(args))),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("chat-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
