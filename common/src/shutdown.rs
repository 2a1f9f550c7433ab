//! Shutdown signalling: SIGTERM (supervisord's stop signal) and Ctrl-C both
//! trip one watch channel; every blocking await races against it.

use tokio::sync::watch;

/// A cloneable "stop now" flag. `wait()` resolves once shutdown starts.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side; dropping it does not trigger shutdown.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    pub async fn wait(&mut self) {
        // An error means the trigger was dropped: nobody can stop us any
        // more, so never resolve rather than shut down by accident.
        if self.rx.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sleeps `d`, or less if shutdown starts; returns true if it did.
    pub async fn sleep(&mut self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.wait() => true,
        }
    }
}

/// A `Shutdown` tripped by SIGTERM or SIGINT. Returns the trigger too, so
/// the caller can also stop on its own (tests, fatal errors).
pub fn on_signals() -> std::io::Result<(ShutdownTrigger, Shutdown)> {
    use tokio::signal::unix::{signal, SignalKind};
    let (trigger, shutdown) = channel();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let tx = trigger.tx.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received: stopping"),
            _ = int.recv() => tracing::info!("SIGINT received: stopping"),
        }
        let _ = tx.send(true);
    });
    Ok((trigger, shutdown))
}
