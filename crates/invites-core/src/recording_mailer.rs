//! A mailer that records what it is given, for tests and prototypes (feature `test-util`).

use crate::error::MailError;
use crate::mail::{EmailMessage, Mailer};
use async_trait::async_trait;
use std::sync::{Arc, Mutex, MutexGuard};

/// How a [`RecordingMailer`] answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MailerMode {
    /// Accept every message.
    Ok,
    /// Fail every message with a transient error.
    FailTransient,
    /// Fail every message with a permanent error.
    FailPermanent,
    /// Fail every message with a sender-wide error ([`MailError::misconfigured`]): delivery
    /// pauses.
    FailMisconfigured,
}

#[derive(Debug)]
struct MailerState {
    mode: MailerMode,
    sent: Vec<EmailMessage>,
    attempts: usize,
}

/// A mailer that records what it is given. Clones share the record.
#[derive(Clone, Debug)]
pub struct RecordingMailer {
    state: Arc<Mutex<MailerState>>,
}

impl RecordingMailer {
    fn with_mode(mode: MailerMode) -> Self {
        RecordingMailer {
            state: Arc::new(Mutex::new(MailerState {
                mode,
                sent: Vec::new(),
                attempts: 0,
            })),
        }
    }

    /// Accepts every message.
    pub fn new_ok() -> Self {
        Self::with_mode(MailerMode::Ok)
    }

    /// Fails every message with a transient (retryable) error.
    pub fn new_failing() -> Self {
        Self::with_mode(MailerMode::FailTransient)
    }

    /// Fails every message with a permanent error.
    pub fn new_failing_permanently() -> Self {
        Self::with_mode(MailerMode::FailPermanent)
    }

    /// Changes how later messages are answered.
    pub fn set_mode(&self, mode: MailerMode) {
        self.lock().mode = mode;
    }

    /// Messages accepted so far, in order.
    pub fn sent(&self) -> Vec<EmailMessage> {
        self.lock().sent.clone()
    }

    /// Calls to `send`, failed ones included.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    fn lock(&self) -> MutexGuard<'_, MailerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        let mut s = self.lock();
        s.attempts += 1;
        match s.mode {
            MailerMode::Ok => {
                s.sent.push(message.clone());
                Ok(())
            }
            MailerMode::FailTransient => Err(MailError::transient(
                "recording mailer set to fail (transient)",
            )),
            MailerMode::FailPermanent => Err(MailError::permanent(
                "recording mailer set to fail (permanent)",
            )),
            MailerMode::FailMisconfigured => Err(MailError::misconfigured(
                "recording mailer set to fail (misconfigured)",
            )),
        }
    }
}
