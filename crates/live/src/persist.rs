//! Writes chat and moderation to the database in batches, off the fan-out
//! path: rooms queue writes without waiting; one task applies them in order,
//! many per transaction.

use std::time::Duration;
use store::{ChatWrite, Store};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

// Boxing would cost an allocation per chat message; the queue is the only
// place these live, and it is bounded.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Write(ChatWrite),
    /// Answered once everything queued before it is written (or given up).
    Flush(oneshot::Sender<()>),
}

#[derive(Clone, Debug)]
pub struct Persister {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Write(w) => f.debug_tuple("Write").field(w).finish(),
            Msg::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Persister {
    pub fn spawn(store: Store, batch: usize, queue: usize) -> Persister {
        let (tx, rx) = mpsc::channel(queue);
        tokio::spawn(run(store, rx, batch));
        Persister { tx }
    }

    /// Never waits. When the database has fallen so far behind that the
    /// queue is full, the write is dropped and logged: the live room must
    /// not stall because storage does.
    pub fn push(&self, write: ChatWrite) {
        if let Err(e) = self.tx.try_send(Msg::Write(write)) {
            tracing::error!(error = %e, "chat write queue full or closed; write dropped");
        }
    }

    /// Waits until everything queued so far has been written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Msg>, batch: usize) {
    let mut msgs = Vec::with_capacity(batch);
    let mut writes = Vec::with_capacity(batch);
    loop {
        msgs.clear();
        if rx.recv_many(&mut msgs, batch).await == 0 {
            return;
        }
        let mut flushes = Vec::new();
        for m in msgs.drain(..) {
            match m {
                Msg::Write(w) => writes.push(w),
                // Answered after this batch: everything before it is in it.
                Msg::Flush(done) => flushes.push(done),
            }
        }
        let span = tracing::debug_span!("chat_writes", n = writes.len());
        write_batch(&store, &mut writes).instrument(span).await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// One transaction for the batch, retried; if it keeps failing, each write
/// on its own, so one bad write (say, for a broadcast deleted meanwhile)
/// cannot take the others down with it.
async fn write_batch(store: &Store, writes: &mut Vec<ChatWrite>) {
    if writes.is_empty() {
        return;
    }
    for delay in [
        Duration::ZERO,
        Duration::from_millis(100),
        Duration::from_millis(500),
        Duration::from_secs(2),
    ] {
        tokio::time::sleep(delay).await;
        match store.apply_chat_writes(writes).await {
            Ok(()) => {
                writes.clear();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "chat write batch failed; retrying"),
        }
    }
    for w in writes.drain(..) {
        if let Err(e) = store.apply_chat_writes(std::slice::from_ref(&w)).await {
            tracing::error!(error = %e, write = ?w, "chat write failed; dropped");
        }
    }
}
