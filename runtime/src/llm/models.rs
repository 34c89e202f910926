//! Which models a deployment offers, and the model behind each name.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::echo::ECHO;
use super::{ChatModel, EchoModel, LlmError};

/// The models offered: `echo` always; with a provider configured, any other name (or only
/// those of an allow-list).
#[derive(Clone)]
pub struct Models {
    provider: Option<Arc<dyn ChatModel>>,
    allowed: Option<BTreeSet<String>>,
}

impl Models {
    /// Only the built-in `echo` (no provider configured).
    pub fn echo_only() -> Self {
        Self {
            provider: None,
            allowed: None,
        }
    }

    /// `echo` and the provider's models: all of them, or those in `allowed`.
    pub fn with_provider(provider: Arc<dyn ChatModel>, allowed: Option<Vec<String>>) -> Self {
        Self {
            provider: Some(provider),
            allowed: allowed.map(|names| names.into_iter().collect()),
        }
    }

    /// Whether `name` is offered.
    pub fn offers(&self, name: &str) -> bool {
        name == ECHO
            || (self.provider.is_some() && self.allowed.as_ref().is_none_or(|allowed| allowed.contains(name)))
    }

    /// The names offered, for an error that tells the caller what to pick; `None` when the
    /// provider accepts any name.
    pub fn offered(&self) -> Option<Vec<String>> {
        match (&self.provider, &self.allowed) {
            (Some(_), None) => None,
            (_, allowed) => Some(
                std::iter::once(ECHO.to_owned())
                    .chain(allowed.iter().flatten().cloned())
                    .collect(),
            ),
        }
    }

    /// The model behind `name`.
    pub fn get(&self, name: &str) -> Result<Arc<dyn ChatModel>, LlmError> {
        if name == ECHO {
            return Ok(Arc::new(EchoModel));
        }
        match &self.provider {
            Some(provider) if self.offers(name) => Ok(Arc::clone(provider)),
            _ => Err(LlmError::UnknownModel(name.to_owned())),
        }
    }
}

impl std::fmt::Debug for Models {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Models")
            .field("provider", &self.provider.is_some())
            .field("allowed", &self.allowed)
            .finish()
    }
}
