//! Typed errors for the library's callers. Each message is one plain sentence that says what to
//! do, because the CLI prints them as they are to students and teachers.

use std::path::PathBuf;

/// Everything that can go wrong in starting a node or in a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process holds the data directory.
    #[error(
        "another lanpeer is already using the data directory {0}; stop it, or give this one its own with --data-dir"
    )]
    DataDirInUse(PathBuf),
    /// The data directory cannot be created or read.
    #[error("cannot use the data directory {path}: {source}; check its permissions or choose another with --data-dir")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `--iface` named an interface that does not exist or has no IPv4 broadcast address.
    #[error("there is no usable network interface named {name}; the usable ones are: {available}")]
    UnknownInterface {
        /// The name asked for.
        name: String,
        /// The names that would work.
        available: String,
    },
    /// No interface to announce on.
    #[error(
        "no usable network interface is up (an IPv4 address with broadcast, or IPv6 with multicast, is needed); connect to the network, or use --iface lo to try lanpeer on this computer alone"
    )]
    NoInterface,
    /// A port is taken by another program.
    #[error("the {what} port {port} is already in use by another program; stop it or choose another port with {flag}")]
    PortInUse {
        /// "discovery (UDP)" or "session (TCP)".
        what: &'static str,
        /// The port.
        port: u16,
        /// The flag that changes it.
        flag: &'static str,
    },
    /// Some other socket error at start.
    #[error("cannot open the {what} socket: {source}")]
    Socket {
        /// Which socket.
        what: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No listed peer fits a name or id.
    #[error("nobody called {0} is online; type /peers to see who is")]
    UnknownPeer(String),
    /// Several listed peers fit a name or id prefix.
    #[error("{0} could be several people ({1}); use more of the id")]
    AmbiguousPeer(String, String),
    /// `/answer` to a problem this peer has not seen.
    #[error("there is no problem {0}; type /problems to see their ids")]
    UnknownProblem(String),
    /// `/feedback` to an answer this peer has not seen.
    #[error("there is no answer {0}; type /problems to see the answers and their ids")]
    UnknownAnswer(String),
    /// A text is empty, or longer than the limit.
    #[error("{0}")]
    BadText(String),
    /// A file cannot be sent or kept: what to do, in one sentence.
    #[error("{0}")]
    Files(String),
    /// The history database failed.
    #[error("the history database failed: {0}")]
    Storage(String),
    /// The node has stopped.
    #[error("the peer has stopped")]
    Stopped,
}
