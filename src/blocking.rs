//! The one place the library waits on a future: [`block_on`]. The GPU's work is
//! asynchronous (the browser cannot block), the CPU backend's futures are ready at once;
//! the synchronous training methods (the command line, the tests) run the async ones
//! through this helper.

use crate::error::Result;
use std::future::Future;

/// Runs a fallible future to completion: natively by blocking the thread
/// (`pollster`).
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    pollster::block_on(f)
}

/// Runs a fallible future to completion: on wasm32 the page's thread cannot block, so
/// the future is polled once and must be ready then (the CPU backend's are); a future
/// still pending (the GPU's) is an error that says to use the async methods.
#[cfg(target_arch = "wasm32")]
pub fn block_on<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(crate::error::Error::Config(
            "internal: a backend that waits on the GPU was driven synchronously; in the \
             browser use the async training methods (step_group_async, run_steps_async)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_ready_future_gives_its_value() {
        assert_eq!(block_on(async { Ok::<_, Error>(3) }).ok(), Some(3));
    }
}
