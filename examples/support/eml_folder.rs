//! The demo server's mailer when no real one is configured: each message becomes an `.eml`
//! file in a folder. lettre builds the MIME message (multipart/alternative, headers encoded
//! as RFC 2047 where they need it) and its file transport writes it; nothing here writes MIME
//! by hand.

use async_trait::async_trait;
use invites::core::{EmailMessage, MailError};
use invites::prelude::*;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;

/// Writes each message as `<random id>.eml` (lettre's file naming) into one folder.
#[derive(Debug)]
pub(crate) struct EmlFolderMailer {
    files: AsyncFileTransport<Tokio1Executor>,
    from: Mailbox,
    message_id_domain: String,
}

impl EmlFolderMailer {
    /// Writes into `dir` (which must exist), as sent by `from` (`Name <address>`); the
    /// outbox's stable message id becomes `Message-ID: <id@message_id_domain>`.
    ///
    /// # Errors
    /// `from` is not a mailbox.
    pub(crate) fn new(
        dir: &Path,
        from: &str,
        message_id_domain: &str,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(EmlFolderMailer {
            files: AsyncFileTransport::new(dir),
            from: from.parse()?,
            message_id_domain: message_id_domain.to_owned(),
        })
    }

    /// The MIME message: lettre's multipart/alternative of the text and HTML parts, each
    /// encoded as lettre chooses (quoted-printable once a line, like the accept link's, is
    /// 76 characters or more).
    fn build(&self, m: &EmailMessage) -> Result<Message, MailError> {
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(
                None,
                m.to.as_str().parse().map_err(MailError::permanent)?,
            ))
            .subject(m.subject.as_str())
            .message_id(Some(format!("<{}@{}>", m.id, self.message_id_domain)))
            .multipart(MultiPart::alternative_plain_html(
                m.text.clone(),
                m.html.clone(),
            ))
            .map_err(MailError::permanent)
    }
}

#[async_trait]
impl Mailer for EmlFolderMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        let mime = self.build(message)?;
        self.files.send(mime).await.map_err(MailError::transient)?;
        Ok(())
    }
}
