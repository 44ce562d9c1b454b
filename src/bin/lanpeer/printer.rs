//! Everything the terminal front end prints goes through one thread that owns rustyline's
//! external printer: the lines of events (from the main loop's [`Output`](crate::output::Output),
//! through a [`Sink`]), the editor's own notes, and the log. The external printer draws each
//! piece above the prompt, then the prompt again with what is being typed and the cursor where
//! they were.
//!
//! The thread is there because printing can wait (rustyline takes one piece at a time from its
//! reader, and a terminal can be slow): neither the async runtime nor the editor ever waits on it.
//! Its queue is unbounded: what it holds is what the node reported, which the node's own limits
//! bound, and a queue that refused would lose lines.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

/// What the printing thread is asked to do.
enum Job {
    /// Print this text (whole lines).
    Text(String),
    /// Say so once everything before is printed.
    Drained(mpsc::SyncSender<()>),
}

/// A piece this large is printed before the next one is taken in.
const PIECE: usize = 256 * 1024;

/// The way to the printing thread. Clone it freely.
#[derive(Clone)]
pub struct Printer {
    tx: mpsc::Sender<Job>,
}

impl Printer {
    /// Start the printing thread with rustyline's external printer. It ends when every
    /// [`Printer`] is dropped.
    pub fn start<P>(mut external: P) -> std::io::Result<Printer>
    where
        P: rustyline::ExternalPrinter + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("lanpeer-printer".into()).spawn(move || {
            let mut waiting = Vec::new();
            while let Ok(first) = rx.recv() {
                let mut text = String::new();
                let mut job = Some(first);
                // What is there already goes out as one piece: one redraw of the prompt.
                while let Some(j) = job.take() {
                    match j {
                        Job::Text(t) => text.push_str(&t),
                        Job::Drained(tell) => waiting.push(tell),
                    }
                    if text.len() < PIECE {
                        job = rx.try_recv().ok();
                    }
                }
                // A failure means the terminal is gone: what is left has nowhere to go. (No log
                // here: the log comes this way.)
                if !text.is_empty() {
                    let _ = external.print(text);
                }
                for tell in waiting.drain(..) {
                    let _ = tell.try_send(());
                }
            }
        })?;
        Ok(Printer { tx })
    }

    /// Print `text` (whole lines) above the prompt.
    pub fn say(&self, text: String) {
        let _ = self.tx.send(Job::Text(text));
    }

    /// A stream for [`Output`](crate::output::Output): what it flushes is printed above the prompt.
    pub fn sink(&self) -> Sink {
        Sink { printer: self.clone(), buf: Vec::new() }
    }

    /// Wait (at most `within`) until everything handed over so far is printed.
    pub fn drain(&self, within: Duration) -> bool {
        let (tell, told) = mpsc::sync_channel(1);
        self.tx.send(Job::Drained(tell)).is_ok() && told.recv_timeout(within).is_ok()
    }
}

/// The main loop's output stream on a terminal: bytes gathered until a flush, then printed.
pub struct Sink {
    printer: Printer,
    buf: Vec<u8>,
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let bytes = std::mem::take(&mut self.buf);
            self.printer.say(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()));
        }
        Ok(())
    }
}

/// Where the log goes once the terminal front end runs: above the prompt, not through it.
static LOG_ABOVE: OnceLock<Printer> = OnceLock::new();

/// From now on, print log lines above the prompt.
pub fn log_above_prompt(p: &Printer) {
    let _ = LOG_ABOVE.set(p.clone());
}

/// One log event, written when dropped: above the prompt when the terminal front end runs,
/// else to stderr.
#[derive(Default)]
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.0);
        match LOG_ABOVE.get() {
            Some(p) => p.say(String::from_utf8_lossy(&bytes).into_owned()),
            None => {
                let _ = std::io::stderr().write_all(&bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// An external printer that keeps what it is given, slowly.
    #[derive(Clone, Default)]
    struct Slow(Arc<Mutex<Vec<String>>>);

    impl rustyline::ExternalPrinter for Slow {
        fn print(&mut self, msg: String) -> rustyline::Result<()> {
            std::thread::sleep(Duration::from_millis(20));
            self.0.lock().unwrap().push(msg);
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_and_in_few_pieces() {
        let got = Slow::default();
        let p = Printer::start(got.clone()).unwrap();
        let mut sink = p.sink();
        for i in 0..200 {
            writeln!(sink, "line {i}").unwrap();
            if i % 10 == 9 {
                sink.flush().unwrap();
            }
        }
        assert!(p.drain(Duration::from_secs(10)));
        let pieces = got.0.lock().unwrap().clone();
        let all: String = pieces.concat();
        let want: String = (0..200).map(|i| format!("line {i}\n")).collect();
        assert_eq!(all, want);
        assert!(pieces.len() < 20, "{} pieces for 20 flushes while the printer was busy", pieces.len());
        assert!(pieces.iter().all(|p| p.ends_with('\n')));
    }
}
