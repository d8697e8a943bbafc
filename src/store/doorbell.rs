//! Push delivery: a stage queue's workers are woken the moment a task is
//! queued for them, instead of at their next heartbeat.
//!
//! apalis fetches when its worker is polled, and an idle worker is polled
//! again only when something wakes it; left alone, that is the heartbeat
//! timer (10 s by default), which is why every stage hand-off used to wait for
//! a clock tick. A [`Doorbell`] is rung whenever a task is pushed: by
//! [`StageQueues::enqueue`](super::queue::StageQueues::enqueue) in this
//! process, and, on Redis, by a subscriber to the channel every push is
//! announced on (`tasks:<queue>:active:available`), so workers in other
//! processes hear it too. Each worker listens through a
//! [`Wakeups`] poll strategy (apalis' `PollWith`), which wakes it so it
//! fetches at once. The heartbeat still wakes it too: polling stays, as the
//! slow safety net.
//!
//! Doorbells are shared by every queue handle of the process that names the
//! same queue (see [`Doorbell::for_queue`]), so an API and a worker built
//! separately in one process (as tests and `clipforge serve` do) hear each other.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::ext::poll_strategy::{PollSnapshot, PollStrategy};
use futures::task::AtomicWaker;

/// After a ring, the worker is woken at once and twice more, this long after
/// the ring: a fetch that was already on its way to the queue when the task
/// was pushed can come back empty, and apalis would then park the worker until
/// its heartbeat. The echoes make that a delay of milliseconds.
const ECHOES: [Duration; 2] = [Duration::from_millis(25), Duration::from_millis(250)];

/// Rings the workers of one stage queue.
#[derive(Debug, Clone, Default)]
pub struct Doorbell(Arc<Bell>);

#[derive(Debug, Default)]
struct Bell {
    listeners: Mutex<Vec<Weak<Listener>>>,
    /// Whether something outside the process's pushes (the embedded queue's
    /// commit watcher) already rings this bell; see [`Doorbell::claim_watch`].
    watched: AtomicBool,
}

#[derive(Debug, Default)]
struct Listener {
    rung: AtomicBool,
    waker: AtomicWaker,
}

/// Every doorbell of this process, by queue (`<queue url>#<queue name>`).
static DOORBELLS: LazyLock<Mutex<HashMap<String, Weak<Bell>>>> = LazyLock::new(Default::default);

impl Doorbell {
    /// The doorbell of the queue `name` at `url`, shared with every other
    /// handle of this process on the same queue.
    pub fn for_queue(url: &str, name: &str) -> Self {
        let key = format!("{url}#{name}");
        let mut all = DOORBELLS.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, bell| bell.strong_count() > 0);
        if let Some(bell) = all.get(&key).and_then(Weak::upgrade) {
            return Doorbell(bell);
        }
        let bell = Arc::new(Bell::default());
        all.insert(key, Arc::downgrade(&bell));
        Doorbell(bell)
    }

    /// Wakes every worker listening on this queue.
    pub fn ring(&self) {
        let mut listeners = self.0.listeners.lock().unwrap_or_else(|e| e.into_inner());
        listeners.retain(|l| match l.upgrade() {
            Some(l) => {
                l.rung.store(true, Ordering::Release);
                l.waker.wake();
                true
            }
            None => false,
        });
    }

    /// A poll strategy for one worker that wakes it when the bell rings.
    pub fn listen(&self) -> Wakeups {
        let listener = Arc::new(Listener::default());
        self.0.listeners.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&listener));
        Wakeups { listener, echo: None, echoes_left: 0 }
    }

    /// Claims the watching of this bell for the caller: true the first time
    /// for a given bell, false after. A bell lives as long as any queue handle
    /// on its queue, and so does the watcher that claimed it (it holds only a
    /// [`WeakDoorbell`] and ends once the bell has gone), so a process runs one
    /// watcher per queue however many handles it builds; once every handle has
    /// gone, the next one gets a new bell and starts a new watcher.
    pub fn claim_watch(&self) -> bool {
        !self.0.watched.swap(true, Ordering::AcqRel)
    }

    /// A weak handle, for a background task that must not keep the bell alive.
    pub fn downgrade(&self) -> WeakDoorbell {
        WeakDoorbell(Arc::downgrade(&self.0))
    }
}

/// A doorbell that may have gone (every queue handle of its queue dropped).
#[derive(Debug, Clone)]
pub struct WeakDoorbell(Weak<Bell>);

impl WeakDoorbell {
    /// Whether some queue handle still holds the bell.
    pub fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }

    /// Rings the bell if it is still there; false once it has gone.
    pub fn ring(&self) -> bool {
        match self.0.upgrade() {
            Some(bell) => {
                Doorbell(bell).ring();
                true
            }
            None => false,
        }
    }
}

/// One worker's ear on a [`Doorbell`]: an apalis poll strategy. apalis calls
/// [`PollStrategy::poll_drive`] with the worker's waker before every fetch
/// attempt, so registering that waker here is all it takes for a ring to
/// make the worker fetch.
#[derive(Debug)]
pub struct Wakeups {
    listener: Arc<Listener>,
    echo: Option<Pin<Box<tokio::time::Sleep>>>,
    echoes_left: usize,
}

impl Wakeups {
    /// Whether the bell rang since the last call; registers `cx`'s waker.
    fn take_ring(&self, cx: &Context<'_>) -> bool {
        if self.listener.rung.swap(false, Ordering::AcqRel) {
            return true;
        }
        self.listener.waker.register(cx.waker());
        self.listener.rung.swap(false, Ordering::AcqRel)
    }

    fn arm_echo(&mut self) {
        let next = ECHOES.len() - self.echoes_left;
        self.echo = ECHOES.get(next).map(|d| Box::pin(tokio::time::sleep(*d)));
    }
}

impl PollStrategy for Wakeups {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut woke = false;
        if self.take_ring(cx) {
            // This very poll goes on to fetch; the echoes cover a fetch that
            // was already under way and missed the task.
            self.echoes_left = ECHOES.len();
            self.arm_echo();
            woke = true;
        }
        loop {
            let Some(echo) = self.echo.as_mut() else { break };
            if echo.as_mut().poll(cx).is_pending() {
                break;
            }
            self.echoes_left = self.echoes_left.saturating_sub(1);
            if self.echoes_left == 0 {
                self.echo = None;
            } else {
                self.arm_echo();
            }
            woke = true;
        }
        if woke { Poll::Ready(Some(())) } else { Poll::Pending }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn snapshot() -> PollSnapshot {
        apalis_core::backend::ext::poll_strategy::PollMetrics::default().snapshot()
    }

    #[tokio::test(start_paused = true)]
    async fn a_ring_wakes_the_listener_at_once_and_echoes_twice() {
        let bell = Doorbell::for_queue("test://ring", "render");
        let mut ear = bell.listen();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);

        assert!(ear.poll_drive(&mut cx, &snapshot()).is_pending(), "nothing rang yet");
        bell.ring();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the ring woke the worker");
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_ready(), "the ring is seen");
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_pending(), "and seen once");

        let ms = Duration::from_millis(1);
        tokio::time::advance(ECHOES[0] - ms).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_pending(), "no echo before 25 ms");
        tokio::time::advance(ms).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_ready(), "first echo, 25 ms after the ring");
        tokio::time::advance(ECHOES[1] - ms).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_pending(), "the second waits 250 ms after the first");
        tokio::time::advance(ms).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_ready(), "second echo");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_pending(), "no more after the echoes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ring_during_the_echoes_starts_them_again() {
        let bell = Doorbell::for_queue("test://again", "render");
        let mut ear = bell.listen();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        bell.ring();
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_ready());
        tokio::time::advance(ECHOES[0]).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_ready(), "first echo");
        // Rung again 100 ms into the 250 ms wait for the second echo.
        tokio::time::advance(Duration::from_millis(100)).await;
        bell.ring();
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_ready(), "the new ring is seen at once");
        tokio::time::advance(ECHOES[0]).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_ready(), "a first echo again, 25 ms after the new ring");
        tokio::time::advance(ECHOES[1] - Duration::from_millis(1)).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_pending(), "the old schedule is gone");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_ready(), "second echo of the new ring");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(ear.poll_drive(&mut cx, &snapshot()).is_pending());
    }

    #[test]
    fn handles_on_the_same_queue_share_a_bell_and_others_do_not() {
        let a = Doorbell::for_queue("sqlite:/tmp/q.db", "ns:render");
        let b = Doorbell::for_queue("sqlite:/tmp/q.db", "ns:render");
        let other = Doorbell::for_queue("sqlite:/tmp/q.db", "ns:publish");
        let ear = b.listen();
        let far = other.listen();
        a.ring();
        assert!(ear.listener.rung.load(Ordering::SeqCst), "a ring on one handle reaches the other");
        assert!(!far.listener.rung.load(Ordering::SeqCst), "another queue's worker is left alone");
    }

    #[test]
    fn a_queue_is_watched_once_while_its_bell_lives_and_anew_after() {
        let a = Doorbell::for_queue("sqlite:/tmp/watch.db", "ns:render");
        let b = Doorbell::for_queue("sqlite:/tmp/watch.db", "ns:render");
        assert!(a.claim_watch(), "the first handle starts the watcher");
        assert!(!b.claim_watch(), "a second handle on the same queue does not");
        assert!(Doorbell::for_queue("sqlite:/tmp/watch.db", "other:render").claim_watch(), "another queue is its own");
        drop((a, b));
        let c = Doorbell::for_queue("sqlite:/tmp/watch.db", "ns:render");
        assert!(c.claim_watch(), "once every handle has gone (and its watcher with it), the next one starts anew");
    }

    #[test]
    fn a_ring_before_the_worker_parks_is_not_lost() {
        let bell = Doorbell::for_queue("test://early", "prepare");
        let ear = bell.listen();
        bell.ring();
        let waker = std::task::Waker::noop();
        let cx = Context::from_waker(waker);
        assert!(ear.take_ring(&cx));
    }
}
