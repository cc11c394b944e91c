//! The media engine's wake-up of a call's task: a flag and a waker.
//!
//! The engine raises the flag when the call's core wants attention; the
//! task's port ([`super::MediaPort::poll_input`]) lowers it and returns.
//! Raising an already raised flag does nothing, so a burst of packets
//! wakes the task once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// One call's wake-up; see the module documentation.
#[derive(Default)]
pub(super) struct Signal {
    raised: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    /// Wakes the task, unless it was already woken and has not looked yet.
    pub(super) fn raise(&self) {
        if self.raised.swap(true, Ordering::AcqRel) {
            return;
        }
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ready (and lowered) once raised; otherwise the task's waker is kept
    /// for [`Signal::raise`].
    pub(super) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.raised.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        {
            let mut waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
            match waker.as_mut() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        // A raise between the first look and the waker being kept took no
        // waker: look again.
        if self.raised.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_burst_wakes_once_and_is_seen_once() {
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let signal = Signal::default();
        assert!(signal.poll(&mut cx).is_pending());
        for _ in 0..10 {
            signal.raise();
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(signal.poll(&mut cx).is_ready());
        assert!(signal.poll(&mut cx).is_pending());
        // Raised before anyone waited: seen at the next look.
        signal.raise();
        assert!(signal.poll(&mut cx).is_ready());
    }
}
