//! New ready tasks, announced: a claim that found nothing may wait for one
//! instead of asking the table again and again.
//!
//! A transaction that makes a task ready says so ([`super::Tx::tasks_ready`]);
//! when it commits, this instance's [`Ready`] signal moves on, and on
//! PostgreSQL a `NOTIFY` on [`READY_CHANNEL`] (sent inside the transaction,
//! so delivered only if it commits) moves every other instance's signal
//! through its listening connection ([`listener`]). Waiters re-check the
//! queue when the signal moves; a wake-up that finds nothing (another
//! claimer was first) simply waits again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use super::users::ACCESS_CHANNEL;
use super::{Db, Result};

/// The channel on which instances announce ready tasks.
pub const READY_CHANNEL: &str = "recount_ready";

/// This instance's signal: a count that moves whenever tasks may have
/// become ready, and a flag that ends every wait at shutdown. Every
/// transaction carries a clone (one reference count).
#[derive(Clone, Debug)]
pub struct Ready(Arc<Signal>);

#[derive(Debug)]
struct Signal {
    moved: watch::Sender<u64>,
    stopping: AtomicBool,
}

impl Default for Ready {
    fn default() -> Ready {
        Ready(Arc::new(Signal {
            moved: watch::channel(0).0,
            stopping: AtomicBool::new(false),
        }))
    }
}

impl Ready {
    /// Tasks may have become ready: wakes every waiter.
    pub fn bump(&self) {
        self.0.moved.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver to wait on: it wakes at the next move after this call.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.0.moved.subscribe()
    }

    /// How many waiters (receivers) there are now.
    pub fn waiting(&self) -> usize {
        self.0.moved.receiver_count()
    }

    /// Ends every wait, now and from now on (the server is stopping: a
    /// request that waits would hold its shutdown back).
    pub fn stop(&self) {
        self.0.stopping.store(true, Ordering::SeqCst);
        self.bump();
    }

    /// Whether [`Ready::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.0.stopping.load(Ordering::SeqCst)
    }
}

/// A connection listening for other instances' announcements, on
/// PostgreSQL: access changes ([`ACCESS_CHANNEL`]) and ready tasks
/// ([`READY_CHANNEL`]). `None` on SQLite, whose one instance hears itself.
pub async fn listener(db: &Db) -> Result<Option<sqlx::postgres::PgListener>> {
    let Some(url) = db.listen_url() else {
        return Ok(None);
    };
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen_all([ACCESS_CHANNEL, READY_CHANNEL]).await?;
    Ok(Some(listener))
}

#[cfg(test)]
mod tests {
    use super::Ready;

    #[tokio::test]
    async fn a_bump_wakes_a_waiter_that_subscribed_before_it() {
        let ready = Ready::default();
        let mut waiter = ready.watch();
        waiter.borrow_and_update();
        assert_eq!(ready.waiting(), 1);
        ready.bump();
        waiter.changed().await.expect("the sender lives");
        assert!(!ready.stopping());
        ready.stop();
        waiter.changed().await.expect("stop wakes too");
        assert!(ready.stopping());
    }
}
