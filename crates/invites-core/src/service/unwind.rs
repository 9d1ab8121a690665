//! Catching a panic inside a future, without a runtime: the outbox uses it so that one message
//! whose renderer, mailer or store panics cannot end a delivery pass (or the worker running it).

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind as catch};
use std::pin::Pin;
use std::task::{Context, Poll};

/// What a caught panic carried.
pub(super) type Panic = Box<dyn Any + Send>;

/// Runs `future` to its end, or to its panic: `Err` holds the panic's payload.
///
/// Unwind safety: the service's shared state is a `Mutex` read with `into_inner` on poison and
/// the store's own; a panicking attempt leaves the outbox row leased, which the caller then
/// records, so nothing observes a half-made value.
pub(super) fn catch_unwind<F: Future>(future: F) -> CatchUnwind<F> {
    CatchUnwind(Box::pin(future))
}

/// The future of [`catch_unwind`].
pub(super) struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The panic's message when it is text (`panic!("...")`), else a placeholder. Panic messages
/// are the code's own words; the outbox records them as the attempt's error.
pub(super) fn panic_text(panic: &Panic) -> &str {
    panic
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
        let mut f = Box::pin(f);
        f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_panic_becomes_an_error_and_a_value_passes() {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let caught = poll_once(catch_unwind(async { panic!("boom {}", 7) }));
        std::panic::set_hook(hook);
        match caught {
            Poll::Ready(Err(p)) => assert_eq!(panic_text(&p), "boom 7"),
            _ => panic!("the panic was not caught"),
        }
        assert!(matches!(
            poll_once(catch_unwind(async { 5 })),
            Poll::Ready(Ok(5))
        ));
    }
}
