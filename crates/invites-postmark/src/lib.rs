//! Postmark mailer (in progress).
