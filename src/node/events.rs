//! The receiving end of a node's events, and the sending end the node's tasks share.
//!
//! Why batches: the actor reports a turn's events together, once the turn is committed (a
//! receiving turn of a stream is hundreds of messages). One channel message and one wake-up per
//! event (the channel's slot, its atomics, the reader's waker, and a block of 32 slots allocated
//! on one thread and freed on another) was ≈ 7 % of a stream's CPU; one per turn is a fraction
//! of that. The application still reads events one by one ([`Events::recv`]), in the order they
//! were sent.

use tokio::sync::mpsc;
pub use tokio::sync::mpsc::error::TryRecvError;

use crate::event::Event;

/// The sending end: a batch of events (in order) per send.
pub(crate) type EventSender = mpsc::UnboundedSender<Vec<Event>>;

/// A channel of events: the sending end for the node's tasks, the receiving end for the user.
pub(crate) fn channel() -> (EventSender, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Events { rx, cur: Vec::new().into_iter() })
}

/// The receiving end of a node's events. Read it: events are queued until read.
///
/// Its methods are those of tokio's unbounded receiver that read: [`recv`](Events::recv),
/// [`try_recv`](Events::try_recv), [`recv_many`](Events::recv_many) and
/// [`blocking_recv`](Events::blocking_recv). `recv` and `recv_many` are cancel safe (usable in
/// `tokio::select!`): an event is never lost by a branch that loses.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<Vec<Event>>,
    /// What is left of the batch being read.
    cur: std::vec::IntoIter<Event>,
}

impl Events {
    /// The next event; `None` once the node has stopped and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.cur.next() {
                return Some(e);
            }
            // Cancel safe: nothing is taken until the channel's own (cancel safe) `recv` returns,
            // and nothing is awaited after it.
            self.cur = self.rx.recv().await?.into_iter();
        }
    }

    /// The next event if there is one now.
    pub fn try_recv(&mut self) -> Result<Event, TryRecvError> {
        loop {
            if let Some(e) = self.cur.next() {
                return Ok(e);
            }
            self.cur = self.rx.try_recv()?.into_iter();
        }
    }

    /// Wait for at least one event, then append to `buf` every event there is, up to `limit`;
    /// how many were appended (0: the node stopped and every event was read, or `limit` is 0).
    pub async fn recv_many(&mut self, buf: &mut Vec<Event>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        // An empty batch is not an event: wait on (0 means the end, as tokio's `recv_many`).
        while self.cur.len() == 0 {
            match self.rx.recv().await {
                Some(batch) => self.cur = batch.into_iter(),
                None => return 0,
            }
        }
        let mut n = 0;
        while n < limit {
            match self.cur.next() {
                Some(e) => {
                    buf.push(e);
                    n += 1;
                }
                None => match self.rx.try_recv() {
                    Ok(batch) => self.cur = batch.into_iter(),
                    Err(_) => break,
                },
            }
        }
        n
    }

    /// The next event, blocking the thread (not from inside an async runtime).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.cur.next() {
                return Some(e);
            }
            self.cur = self.rx.blocking_recv()?.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(i: usize) -> Event {
        Event::Warning { message: i.to_string() }
    }

    fn number(e: &Event) -> usize {
        match e {
            Event::Warning { message } => message.parse().unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Batches of any size, empty ones included, come out one event at a time, in order, by
    /// every way of reading; then the end.
    #[tokio::test]
    async fn batches_are_read_one_by_one_in_order() {
        let (tx, mut ev) = channel();
        let mut next = 0;
        for size in [3usize, 0, 1, 600, 2, 0, 7] {
            tx.send((next..next + size).map(warning).collect()).unwrap();
            next += size;
        }
        drop(tx);
        let mut got = Vec::new();
        got.push(number(&ev.recv().await.unwrap()));
        got.push(number(&ev.try_recv().unwrap()));
        let mut buf = Vec::new();
        while got.len() < next {
            buf.clear();
            let n = ev.recv_many(&mut buf, 100).await;
            assert!(n > 0 && n <= 100 && n == buf.len());
            got.extend(buf.iter().map(number));
        }
        assert_eq!(got, (0..next).collect::<Vec<_>>());
        assert!(ev.recv().await.is_none());
        assert_eq!(ev.try_recv().unwrap_err(), TryRecvError::Disconnected);
        assert_eq!(ev.recv_many(&mut buf, 10).await, 0);
    }

    /// An empty batch, then nothing for a while: `recv_many` waits for an event (0 would mean
    /// the end).
    #[tokio::test]
    async fn recv_many_waits_past_an_empty_batch() {
        let (tx, mut ev) = channel();
        tx.send(Vec::new()).unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            tx.send(vec![warning(9)]).unwrap();
        });
        let mut buf = Vec::new();
        assert_eq!(ev.recv_many(&mut buf, 10).await, 1);
        assert_eq!(number(&buf[0]), 9);
        assert_eq!(ev.recv_many(&mut buf, 10).await, 0, "then the end");
    }

    /// A `recv` that loses a `select!` loses no event.
    #[tokio::test]
    async fn recv_is_cancel_safe() {
        let (tx, mut ev) = channel();
        for i in 0..50 {
            tokio::select! {
                biased;
                _ = std::future::ready(()) => {}
                _ = ev.recv() => panic!("nothing sent yet"),
            }
            tx.send(vec![warning(2 * i), warning(2 * i + 1)]).unwrap();
        }
        let mut got = Vec::new();
        while let Ok(e) = ev.try_recv() {
            got.push(number(&e));
        }
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(ev.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    #[test]
    fn blocking_recv_reads_outside_a_runtime() {
        let (tx, mut ev) = channel();
        tx.send(vec![warning(1), warning(2)]).unwrap();
        drop(tx);
        assert_eq!(ev.blocking_recv().map(|e| number(&e)), Some(1));
        assert_eq!(ev.blocking_recv().map(|e| number(&e)), Some(2));
        assert!(ev.blocking_recv().is_none());
    }
}
