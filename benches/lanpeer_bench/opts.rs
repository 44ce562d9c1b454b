//! The command line: which benchmarks, at which sizes, or the worker mode of the convergence
//! benchmark.
//!
//! Three callers, one program. `cargo bench` passes `--bench` and then whatever follows `--`: a
//! measuring run, its arguments checked strictly. `cargo test` (`test = true` in Cargo.toml)
//! passes no `--bench`: a smoke run, and the arguments are libtest's, given to every test target
//! alike (`--nocapture`, `--test-threads=1`, a test name to filter on): the ones that mean
//! nothing here are dropped before parsing, and a filter that names no benchmark selects none,
//! as it selects no test of a binary that has none of that name. The convergence benchmark
//! re-runs this binary as `worker …` for the peers it spreads over processes.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// lanpeer benchmarks: every figure beside a baseline measured in the same run (loopback only).
#[derive(Debug, Parser)]
#[command(
    name = "lanpeer_bench",
    bin_name = "cargo bench --bench lanpeer_bench --",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Benchmarks to run (none named: all).
    #[arg(value_enum)]
    benchmarks: Vec<Bench>,
    /// Small sizes (for development).
    #[arg(long)]
    quick: bool,
    /// A smoke run: tiny sizes, no Zyre, figures that mean nothing (also without `--bench`).
    #[arg(long)]
    smoke: bool,
    /// Given by `cargo bench`; without it (as `cargo test` runs the program) it is a smoke run.
    #[arg(long, hide = true)]
    bench: bool,
    /// Sizes for fan-out and convergence instead of the defaults, e.g. `--n=10,50`.
    #[arg(long = "n", value_name = "N,...", value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Fan-out rounds instead of the default (e.g. long enough to profile).
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// A worker process of the convergence benchmark (started by the bench itself).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// What a convergence worker hosts: peers `first..first + count` of a room of `total`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The room's discovery port.
    pub port: u16,
    /// The room.
    pub room: String,
    /// Index of its first peer in the room.
    pub first: usize,
    /// How many peers it hosts.
    pub count: usize,
    /// Peers in the whole room.
    pub total: usize,
}

/// One benchmark, by the name it is picked with on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bench {
    /// One peer to one peer.
    Stream,
    /// One chat to N peers in one process.
    Fanout,
    /// N peers started together, then a late joiner.
    Convergence,
    /// The history alone.
    Store,
    /// What proving authors costs, and a late joiner's catch-up of 10,000 messages.
    Authorship,
    /// Two CLI processes.
    Cli,
    /// A room of idle CLI processes.
    Idle,
    /// Python pyre in a private network namespace.
    Zyre,
}

/// What the program was asked to do.
pub enum Run {
    /// Benchmarks.
    Bench(Opts),
    /// A convergence worker.
    Worker(WorkerArgs),
}

/// Which benchmarks run, and at which sizes.
pub struct Opts {
    /// `--quick`: small sizes.
    pub quick: bool,
    /// Run by `cargo test` (no `--bench` argument) or with `--smoke`: tiny sizes and no Zyre, to
    /// prove that every benchmark still runs to its end and that the library delivers everything
    /// it measures (any failure makes the process exit with status 1). Its figures mean nothing.
    pub smoke: bool,
    /// The benchmarks named; `None`: all of them.
    only: Option<Vec<Bench>>,
    /// `--n=10,50`: sizes for fan-out and convergence instead of the defaults.
    pub sizes: Option<Vec<usize>>,
    /// `--rounds=N`: fan-out rounds instead of the default.
    pub rounds: Option<usize>,
}

impl Opts {
    /// Whether benchmark `b` runs.
    pub fn wants(&self, b: Bench) -> bool {
        // The smoke run never measures Zyre: it needs pyre and a network namespace, and minutes.
        self.only.as_ref().is_none_or(|o| o.contains(&b)) && !(self.smoke && b == Bench::Zyre)
    }

    /// The full size, the `--quick` one, or the smoke run's.
    pub fn size<T>(&self, full: T, quick: T, smoke: T) -> T {
        if self.smoke {
            smoke
        } else if self.quick {
            quick
        } else {
            full
        }
    }
}

/// This process's command line; a mistake ends the process with clap's message.
pub fn parse() -> Run {
    let args: Vec<OsString> = std::env::args_os().collect();
    let by_cargo_bench = args.iter().any(|a| a == "--bench");
    let is_worker = args.get(1).is_some_and(|a| a == "worker");
    let (args, filtered) = if by_cargo_bench || is_worker { (args, false) } else { libtest_args(args) };
    let cli = Cli::parse_from(args);
    if let Some(Mode::Worker(w)) = cli.mode {
        return Run::Worker(w);
    }
    let only = match (cli.benchmarks.is_empty(), filtered) {
        (true, false) => None,
        _ => Some(cli.benchmarks),
    };
    Run::Bench(Opts { quick: cli.quick, smoke: cli.smoke || !cli.bench, only, sizes: cli.sizes, rounds: cli.rounds })
}

/// The arguments of a run by `cargo test`, which are libtest's: ours are kept, its flags dropped,
/// and its test-name filters dropped too. Also says whether a filter was dropped: then only the
/// benchmarks named run, none if none is.
fn libtest_args(args: Vec<OsString>) -> (Vec<OsString>, bool) {
    let mut kept = Vec::with_capacity(args.len());
    let mut filtered = false;
    let mut it = args.into_iter();
    kept.extend(it.next()); // the program
    // libtest's options that take their value in the next argument.
    const WITH_VALUE: &[&str] =
        &["--test-threads", "--color", "--format", "--skip", "--logfile", "--shuffle-seed", "-Z"];
    let names: Vec<String> = Bench::value_variants()
        .iter()
        .filter_map(|b| b.to_possible_value())
        .map(|v| v.get_name().to_string())
        .collect();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if WITH_VALUE.contains(&&*s) {
            it.next();
            continue;
        }
        let ours = matches!(&*s, "--quick" | "--smoke" | "-h" | "--help")
            || s.starts_with("--n=")
            || s.starts_with("--rounds=")
            || names.iter().any(|n| *n == s);
        if ours {
            kept.push(a);
        } else if !s.starts_with('-') {
            filtered = true;
        }
    }
    (kept, filtered)
}
