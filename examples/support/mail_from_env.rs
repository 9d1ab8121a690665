//! Picks a real mail transport from the example's own environment (library code never
//! reads the environment): `INVITES_SMTP_URL` (feature `smtp`) or `POSTMARK_SERVER_TOKEN`
//! (feature `postmark`), each with `INVITES_MAIL_FROM` as the sender; otherwise the example's
//! own fallback mailer. Shared by the quickstart and the server example.

use invites::prelude::*;
use std::error::Error;
use std::sync::Arc;

/// The mailer this run's configuration asks for, or `fallback`.
pub(crate) fn from_env(fallback: Arc<dyn Mailer>) -> Result<Arc<dyn Mailer>, Box<dyn Error>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let from = var("INVITES_MAIL_FROM");
    if let Some(url) = var("INVITES_SMTP_URL") {
        #[cfg(feature = "smtp")]
        {
            let from = from.ok_or("INVITES_SMTP_URL needs INVITES_MAIL_FROM (the sender)")?;
            let config = invites::smtp::SmtpConfig::from_url(&url)?
                .from(from)
                .build()?;
            println!(
                "mailer: SMTP to {}:{} ({:?})\n",
                config.host(),
                config.port(),
                config.security()
            );
            return Ok(Arc::new(invites::smtp::SmtpMailer::new(config)?));
        }
        #[cfg(not(feature = "smtp"))]
        {
            let _ = url;
            println!(
                "INVITES_SMTP_URL is set but this build lacks `--features smtp`; printing instead\n"
            );
        }
    }
    if let Some(token) = var("POSTMARK_SERVER_TOKEN") {
        #[cfg(feature = "postmark")]
        {
            let from = from.ok_or("POSTMARK_SERVER_TOKEN needs INVITES_MAIL_FROM (the sender)")?;
            let config = invites::postmark::PostmarkConfig::builder(token, from).build()?;
            println!("mailer: Postmark ({})\n", config.base_url());
            return Ok(Arc::new(invites::postmark::PostmarkMailer::new(config)?));
        }
        #[cfg(not(feature = "postmark"))]
        {
            let _ = token;
            println!(
                "POSTMARK_SERVER_TOKEN is set but this build lacks `--features postmark`; printing instead\n"
            );
        }
    }
    let _ = from;
    Ok(fallback)
}
