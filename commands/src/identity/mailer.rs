use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Sends mail over SMTP (`AGENTRY_SMTP_URL`, e.g. `smtp://127.0.0.1:2525` or
/// `smtps://user:pass@host`), through lettre.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `url`, sending as `from`.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| format!("invalid AGENTRY_SMTP_URL: {error}"))?
            .build();
        let from = from
            .parse()
            .map_err(|error| format!("invalid sender address {from}: {error}"))?;
        Ok(Self { transport, from })
    }

    /// Whether `to` is an address this mailer can send to (checked before recording anything
    /// that promises a mail).
    pub fn can_send_to(to: &str) -> bool {
        to.parse::<Mailbox>().is_ok()
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let to: Mailbox = to
            .parse()
            .map_err(|error| format!("invalid recipient: {error}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|error| format!("building the message failed: {error}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|error| format!("SMTP delivery failed: {error}"))
    }
}
