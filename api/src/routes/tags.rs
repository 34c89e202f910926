use poem_openapi::Tags;

/// Sections of the API documentation.
#[derive(Tags)]
pub enum ApiTags {
    /// Registration, login, token refresh and password reset.
    Auth,
    /// The caller.
    Me,
    /// Organization API keys.
    ApiKeys,
    /// Agents: versioned definitions of model, prompt, tools and approval.
    Agents,
    /// Conversations with an agent, and their runs.
    Conversations,
    /// Runs: reading them, cancelling them, deciding on their tool calls.
    Runs,
    /// A run's events live (Server-Sent Events, WebSocket), and stream tickets for browsers.
    Streams,
    /// HTTP tools agents call: versioned definitions with a write-only signing secret.
    Tools,
    /// Organization members and roles.
    Members,
    /// The organization's events.
    Events,
    /// The organization's audit log: who did what, when and from where, in a hash chain an
    /// auditor can verify.
    Audit,
    /// The organization's usage: runs, model calls, tokens and credits per day or month.
    Usage,
    /// The organization's credits: balance, ledger, buying credits through Stripe Checkout,
    /// and Stripe's webhook.
    Billing,
    /// Platform administration.
    Admin,
}
