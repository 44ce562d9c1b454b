//! The `lanpeer` command: a thin layer over the library. It parses flags into a [`Config`],
//! starts a [`Node`], and then moves lines from stdin to node commands and events from the node
//! to stdout (for people, or as JSON lines with `--json`). End of input, `/quit`, Ctrl-C and
//! SIGTERM all leave gracefully.
//!
//! For a person at a terminal (stdin and stdout are terminals, not `--json`) the lines come from
//! the line editor of editor.rs instead, and the events are printed above its prompt, in colour
//! (paint.rs); closing the terminal (SIGHUP) then leaves gracefully too. The main loop is the
//! same for both: only where its lines come from and where its output goes differ.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lanpeer::crypto::Passphrase;
use lanpeer::web::Web;
use lanpeer::{Config, Event, Node};

mod arrivals;
mod attach;
mod collect;
mod commands;
mod complete;
mod configfile;
mod doctor;
mod editor;
mod export;
mod fit;
mod input;
mod output;
mod paint;
mod printer;
mod roster;
mod size;

use output::Output;
use roster::Roster;

/// lanpeer: chat, exercises, answers and feedback between the computers of one classroom,
/// with nothing installed but this program.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, args_override_self = true)]
struct Args {
    /// Read settings from FILE: `key = value` lines (name, room, iface, port, tcp-port, peer,
    /// data-dir, role, teacher, passphrase-file, downloads, max-file, max-files); flags given
    /// here win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A peer to contact directly, HOST[:PORT] (a name or an address; PORT is its session port,
    /// default 5681), for peers that broadcast does not reach (another subnet, a Wi-Fi that
    /// blocks it). Repeat for more; one is enough to meet everyone it knows.
    #[arg(long = "peer", value_name = "HOST[:PORT]")]
    peers: Vec<lanpeer::seeds::SeedAddr>,
    /// Your name as others see it (default: your login name).
    #[arg(long)]
    name: Option<String>,
    /// Room to join; peers in other rooms are not seen (default: the room of --teacher's code,
    /// else "classroom").
    #[arg(long)]
    room: Option<String>,
    /// The teacher's room code, as the teacher's peer shows it (e.g. 5B-6d81-c34e-9dc1-1e60-7bde):
    /// only that teacher is shown as the teacher; others who claim the role are shown unverified.
    #[arg(long, value_name = "CODE")]
    teacher: Option<lanpeer::trust::RoomCode>,
    /// Network interface to use (repeat for several); default: every LAN interface. `lo` runs
    /// several peers on this computer only.
    #[arg(long = "iface", value_name = "IFACE")]
    ifaces: Vec<String>,
    /// UDP port of discovery (the same on every computer of the class).
    #[arg(long, value_name = "UDP_PORT", default_value_t = lanpeer::config::DEFAULT_DISCOVERY_PORT)]
    port: u16,
    /// TCP port for connections from other peers (default: 5681 if free, else any free port).
    #[arg(long, value_name = "PORT")]
    tcp_port: Option<u16>,
    /// Folder for this peer's identity (default: the per-user data folder of the system).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Say that you are the teacher (others see it in the peer list).
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// Read the room's passphrase from this file (its first line). Without a passphrase flag,
    /// the environment variable LANPEER_PASSPHRASE is used if set; otherwise the room is open.
    #[arg(long, value_name = "FILE", conflicts_with = "ask_passphrase")]
    passphrase_file: Option<PathBuf>,
    /// Ask for the room's passphrase on the terminal (not echoed).
    #[arg(long)]
    ask_passphrase: bool,
    /// Machine-readable mode: commands on stdin, one JSON object per event on stdout.
    #[arg(long)]
    json: bool,
    /// Also serve this peer's web page, on ADDR (default: 127.0.0.1 and a free port). On any other
    /// address the page asks for the secret token in the address printed; whoever has that
    /// address can act as this peer.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    web: Option<String>,
    /// With --web: open the page in the browser.
    #[arg(long, requires = "web")]
    open: bool,
    /// Keep messages for an absent peer this many hours (then they are dropped, with a log line).
    #[arg(long, value_name = "HOURS", default_value_t = 24.0)]
    keep_hours: f64,
    /// Keep at most this many messages per absent peer (the oldest are dropped first).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    keep_max: usize,
    /// How many recent chats a late joiner gets from this peer (with every exercise).
    #[arg(long, value_name = "N", default_value_t = 100)]
    catch_up: usize,
    /// Save the files others send under DIR/<room>/ (default: the download folder of the system,
    /// in lanpeer/).
    #[arg(long, value_name = "DIR")]
    downloads: Option<PathBuf>,
    /// The largest file this peer sends or fetches, e.g. 500M or 2G.
    #[arg(long, value_name = "SIZE", default_value = "2G")]
    max_file: size::Size,
    /// The most this peer keeps of files in all (sent and received, in its data folder), e.g. 20G.
    #[arg(long, value_name = "SIZE", default_value = "20G")]
    max_files: size::Size,
    /// More log on stderr (-v: info, -vv: debug). LANPEER_LOG overrides, e.g. LANPEER_LOG=lanpeer=trace.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Sub>,
}

/// Tools that read a peer's history instead of running a peer.
#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Write the problems with every answer and its feedback (names, times, texts) to stdout.
    Export {
        /// The data folder of the peer (default: as for the peer).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// csv or json.
        #[arg(long, value_enum, default_value = "csv")]
        format: export::Format,
        /// Only this problem (its id, or the short form the prompt shows).
        #[arg(long, value_name = "ID")]
        problem: Option<String>,
        /// Only this room (default: every room this data folder was used in).
        #[arg(long)]
        room: Option<String>,
    },
    /// Write each student's latest answer to a problem into DIR: DIR/<name (id8)>/answer.txt and
    /// its files, and DIR/index.csv (student, id, time, versions, files, sha256). Works while the
    /// peer runs; DIR must be new or empty.
    Collect {
        /// The problem (its id, or the short form the prompt shows).
        #[arg(value_name = "PROBLEM-ID")]
        problem: String,
        /// The folder to write into.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The data folder of the peer (default: as for the peer).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Only this room (default: every room this data folder was used in).
        #[arg(long)]
        room: Option<String>,
    },
    /// Say which interfaces and ports a peer would use, and whether the peers named with
    /// --peer answer: for when peers do not see each other. Sends no beacon.
    Doctor {
        /// Interface to check, as for a peer (repeat for several).
        #[arg(long = "iface", value_name = "IFACE")]
        ifaces: Vec<String>,
        /// UDP port of discovery.
        #[arg(long, value_name = "UDP_PORT", default_value_t = lanpeer::config::DEFAULT_DISCOVERY_PORT)]
        port: u16,
        /// Session port to check.
        #[arg(long, value_name = "PORT", default_value_t = lanpeer::config::DEFAULT_TCP_PORT)]
        tcp_port: u16,
        /// A peer to try, HOST[:PORT] (repeat for several).
        #[arg(long = "peer", value_name = "HOST[:PORT]")]
        peers: Vec<lanpeer::seeds::SeedAddr>,
        /// The data folder to check (default: as for the peer).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Show the recent chat and exercises as the prompt would.
    History {
        /// The data folder of the peer (default: as for the peer).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// How many messages.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON `history` event instead of lines for people.
        #[arg(long)]
        json: bool,
        /// Only this room (default: every room this data folder was used in).
        #[arg(long)]
        room: Option<String>,
    },
}

fn data_dir_or_default(d: Option<PathBuf>) -> Result<PathBuf, lanpeer::Error> {
    match d {
        Some(d) => Ok(d),
        None => lanpeer::config::default_data_dir().ok_or_else(|| {
            lanpeer::Error::BadText("this system has no per-user data folder; choose one with --data-dir".into())
        }),
    }
}

/// Run a subcommand; `None` when there is none (run a peer).
fn run_sub(cmd: Sub) -> Result<(), lanpeer::Error> {
    match cmd {
        Sub::Export { data_dir, format, problem, room } => {
            export::export(&data_dir_or_default(data_dir)?, room.as_deref(), format, problem.as_deref())
        }
        Sub::Collect { problem, dir, data_dir, room } => {
            let got = collect::collect(&data_dir_or_default(data_dir)?, room.as_deref(), &problem, &dir)?;
            let missing = match got.missing {
                0 => String::new(),
                1 => "; 1 file is not received yet (index.csv says which)".into(),
                n => format!("; {n} files are not received yet (index.csv says which)"),
            };
            let n = |n: usize, what: &str| if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") };
            println!("{} and {} written to {}{missing}", n(got.answers, "answer"), n(got.files, "file"), dir.display());
            Ok(())
        }
        Sub::History { data_dir, limit, json, room } => {
            export::history(&data_dir_or_default(data_dir)?, room.as_deref(), limit, json)
        }
        Sub::Doctor { ifaces, port, tcp_port, peers, data_dir } => {
            let data_dir = data_dir.or_else(lanpeer::config::default_data_dir);
            let d = doctor::Doctor { ifaces, port, tcp_port, peers, data_dir };
            match doctor::run(&d, &mut std::io::stdout().lock()) {
                Ok(true) => Ok(()),
                Ok(false) => Err(lanpeer::Error::BadText("the doctor found problems (see above)".into())),
                Err(e) => Err(lanpeer::Error::BadText(format!("cannot write the report: {e}"))),
            }
        }
    }
}

/// The log on stderr; with the terminal front end, above its prompt (through printer.rs).
fn init_logging(verbose: u8, terminal: bool) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANPEER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let log = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if terminal {
        log.with_writer(printer::LogLine::default).with_ansi(paint::Paint::for_terminal().is_on()).init();
    } else {
        log.with_writer(std::io::stderr).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
}

/// Ctrl-C or SIGTERM; with `hangup` (the terminal front end), SIGHUP too: the terminal was closed.
async fn wait_for_signal(hangup: bool) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        let mut hup = if hangup { signal(SignalKind::hangup()).ok() } else { None };
        let hung_up = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = hung_up => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = hangup;
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A line that waits on files this long is said to be slow.
const SLOW_FILES: std::time::Duration = std::time::Duration::from_secs(2);

/// One event to the output, to the web page if there is one (after `ready`, its address), and to
/// the terminal front end's roster if there is one.
fn deliver(out: &mut Output, web: Option<&Web>, roster: Option<&Roster>, open: bool, e: &Event) {
    if let Some(r) = roster {
        r.note(e);
    }
    out.event(e);
    if let Some(w) = web {
        w.publish(e);
        if matches!(e, Event::Ready { .. }) {
            out.web(w.url());
            if open && let Err(err) = lanpeer::web::open_in_browser(w.url()) {
                tracing::warn!(error = %err, "cannot open the browser; open {} yourself", w.url());
            }
        }
    }
}

/// The room's passphrase: from `--passphrase-file`, `--ask-passphrase`, or LANPEER_PASSPHRASE
/// (never from the command line, where other users of the computer could read it).
fn passphrase(room: &str, file: Option<&std::path::Path>, ask: bool) -> Result<Option<Passphrase>, lanpeer::Error> {
    let bad = |s: String| lanpeer::Error::BadText(s);
    let text = if let Some(f) = file {
        let t = std::fs::read_to_string(f)
            .map_err(|e| bad(format!("cannot read the passphrase file {}: {e}", f.display())))?;
        t.lines().next().unwrap_or("").to_string()
    } else if ask {
        rpassword::prompt_password(format!("Passphrase of room \"{room}\": "))
            .map_err(|e| bad(format!("cannot read the passphrase from the terminal: {e}")))?
    } else {
        match std::env::var("LANPEER_PASSPHRASE") {
            Ok(t) => t,
            Err(_) => return Ok(None),
        }
    };
    let p = Passphrase::new(&text);
    if p.expose().is_empty() {
        return Err(bad("the passphrase is empty; give the room's passphrase (or none for an open room)".into()));
    }
    Ok(Some(p))
}

async fn run(args: Args, terminal: bool) -> Result<(), lanpeer::Error> {
    let web_addr = args.web.as_deref().map(lanpeer::web::parse_addr).transpose().map_err(lanpeer::Error::BadText)?;
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => lanpeer::config::default_data_dir().ok_or_else(|| {
            lanpeer::Error::BadText("this system has no per-user data folder; choose one with --data-dir".into())
        })?,
    };
    let mut props = Vec::new();
    if let Some(r) = args.role {
        props.push(("role".to_string(), r));
    }
    let room = match (args.room, &args.teacher) {
        (Some(r), _) => r,
        (None, Some(code)) if !code.room.is_empty() => code.room.clone(),
        (None, _) => lanpeer::config::DEFAULT_ROOM.to_string(),
    };
    let passphrase = passphrase(&room, args.passphrase_file.as_deref(), args.ask_passphrase)?;
    let config = Config {
        passphrase,
        name: args.name.unwrap_or_else(lanpeer::config::default_name),
        room,
        teacher: args.teacher,
        interfaces: args.ifaces,
        discovery_port: args.port,
        tcp_port: args.tcp_port.unwrap_or(lanpeer::config::DEFAULT_TCP_PORT),
        tcp_port_fallback: args.tcp_port.is_none(),
        seeds: args.peers,
        data_dir: Some(data_dir.clone()),
        props,
        keep_for: std::time::Duration::from_secs_f64(args.keep_hours.clamp(0.0, 24.0 * 365.0) * 3600.0),
        max_pending_per_peer: args.keep_max,
        catchup_chats: args.catch_up,
        downloads: args.downloads,
        max_file: args.max_file.0,
        max_files: args.max_files.0,
        ..Config::default()
    };
    // One file descriptor per peer of the room: make sure a lecture hall fits.
    #[cfg(unix)]
    match lanpeer::rlimit::raise_nofile_limit() {
        Ok((soft, _)) if soft < 512 => {
            tracing::warn!(soft, "few files may be open at once; a large room may not fit (raise `ulimit -n`)")
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "cannot raise the open-file limit"),
    }
    // Before the node opens the folder (which would make the key private without a word).
    for warning in lanpeer::identity::privacy_warnings(&data_dir) {
        eprintln!("lanpeer: warning: {warning}");
    }
    let (node, mut events) = Node::start(config).await?;
    let web = match web_addr {
        Some(addr) => match Web::start(node.clone(), addr).await {
            Ok(w) => Some(w),
            Err(e) => {
                node.shutdown().await;
                return Err(e);
            }
        },
        None => None,
    };
    // Lines come in on this channel: from the line editor, or from stdin read by a thread.
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel(4);
    let front = if terminal { start_terminal(&node, &data_dir, lines_tx.clone()).await } else { None };
    let mut out = match &front {
        Some((t, _)) => Output::to(false, Box::new(t.printer().sink())).painted(t.paint()).at_terminal(),
        None => Output::new(args.json),
    };
    if !args.json {
        // The prompt starts with what happened before: this data dir's history.
        let earlier = node.history(30).await.unwrap_or_default();
        if !earlier.is_empty() {
            out.history(&earlier);
            out.flush();
        }
    }
    // With the web page, the end of input does not end the peer (the page goes on using it).
    let mut reading = true;
    // The end of input, once what was read before it is carried out.
    let mut ending = false;
    let mut cmds = commands::Commands::new(node.clone(), front.as_ref().map(|(_, r)| r.clone()));
    // Lines read, waiting their turn while a line waits on files (`work`).
    let mut queue = std::collections::VecDeque::new();
    let mut work: Option<commands::Work> = None;
    // When a line waiting on files is said to be slow (once).
    let mut slow: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    // Stdin is read and parsed on a thread of its own, which hands over lines in batches.
    if front.is_none() {
        std::thread::Builder::new()
            .name("lanpeer-stdin".into())
            .spawn(move || input::read_lines(std::io::BufReader::with_capacity(256 * 1024, std::io::stdin()), lines_tx))
            .map_err(|e| lanpeer::Error::BadText(format!("cannot start: {e}")))?;
    } else {
        // The editor has its own sender: the channel ends when the editor does.
        drop(lines_tx);
    }
    let roster = front.as_ref().map(|(_, r)| r.as_ref());
    let mut ready = Vec::with_capacity(256);
    let signal = wait_for_signal(front.is_some());
    tokio::pin!(signal);
    // In order: whatever is ready is written to the output buffer; only when nothing more is
    // ready at once (the last branch) is the buffer written out. So a burst of events costs few
    // writes, and an event never waits while the peer is idle.
    'run: loop {
        // The lines read are carried out in order, until one waits on files.
        while work.is_none()
            && let Some(line) = queue.pop_front()
        {
            match cmds.handle(&mut out, line).await {
                commands::Handled::Done => {}
                commands::Handled::Quit => break 'run,
                commands::Handled::Wait(w) => {
                    work = Some(w);
                    slow = Some(Box::pin(tokio::time::sleep(SLOW_FILES)));
                }
            }
        }
        if ending && work.is_none() {
            break;
        }
        tokio::select! {
            biased;
            _ = &mut signal => break,
            n = events.recv_many(&mut ready, 256) => {
                if n == 0 {
                    break;
                }
                for e in ready.drain(..) {
                    deliver(&mut out, web.as_ref(), roster, args.open, &e);
                }
            },
            worked = async { work.as_mut().expect("guarded").await }, if work.is_some() => {
                work = None;
                slow = None;
                cmds.finish(&mut out, worked);
            },
            () = async { slow.as_mut().expect("guarded").await }, if slow.is_some() => {
                slow = None;
                out.note("Still reading the files (a large file takes a while); the lines typed since wait for them.");
            },
            () = cmds.inflight.settle(&mut out), if !cmds.inflight.is_empty() => {},
            read = lines.recv(), if reading && !ending && queue.len() < input::BATCH => match read {
                Some(input::Read::Lines(batch)) => queue.extend(batch),
                None if web.is_some() => reading = false,
                None => ending = true,
                Some(input::Read::Failed(e)) => {
                    tracing::warn!(error = %e, "cannot read input");
                    ending = true;
                }
            },
            () = std::future::ready(()), if out.has_pending() => out.flush(),
        }
    }
    // What was typed before leaving is sent before leaving.
    cmds.inflight.finish(&mut out).await;
    node.shutdown().await;
    while let Some(e) = events.recv().await {
        deliver(&mut out, web.as_ref(), roster, false, &e);
    }
    out.flush();
    if let Some(w) = web {
        w.shutdown().await;
    }
    if let Some((t, _)) = front {
        t.finish();
    }
    Ok(())
}

/// Start the terminal front end: the roster filled with what the node knows, then the editor.
/// `None` (and the lines of stdin as they come) when the terminal has no line editor.
async fn start_terminal(
    node: &Node,
    data_dir: &std::path::Path,
    lines: tokio::sync::mpsc::Sender<input::Read>,
) -> Option<(editor::Terminal, std::sync::Arc<Roster>)> {
    let roster = std::sync::Arc::new(Roster::default());
    roster.fill(&node.peers().await.unwrap_or_default(), &node.problems().await.unwrap_or_default());
    let setup = editor::Setup {
        history: Some(data_dir.join(editor::HISTORY_FILE)),
        roster: roster.clone(),
        paint: paint::Paint::for_terminal(),
        lines,
    };
    match editor::Terminal::start(setup) {
        Ok(t) => {
            printer::log_above_prompt(t.printer());
            Some((t, roster))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no line editor on this terminal: lines are read as they come");
            None
        }
    }
}

fn main() -> ExitCode {
    let argv = match configfile::expand(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lanpeer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut args = Args::parse_from(argv);
    let terminal = args.command.is_none() && !args.json && editor::wanted();
    init_logging(args.verbose, terminal);
    if let Some(cmd) = args.command.take() {
        return match run_sub(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lanpeer: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lanpeer: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The peer runs on the runtime's worker threads, beside the node's own tasks (not on this
    // thread, which would be woken from another thread for every event and confirmation).
    let result = rt.block_on(async {
        match tokio::spawn(run(args, terminal)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(lanpeer::Error::Stopped),
        }
    });
    // The peer is down: do not wait for what may still run (the stdin thread may still wait for
    // a line, after Ctrl-C or SIGTERM while the terminal is open; it ends with the process).
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lanpeer: {e}");
            ExitCode::FAILURE
        }
    }
}
