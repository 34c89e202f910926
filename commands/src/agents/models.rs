//! Which model names an agent may name, so a typo is refused when the agent is written, not
//! when its first run fails.

/// The models this deployment offers: the built-in `echo` always; with a provider configured,
/// the names of its allow-list, or any name when there is none.
#[derive(Clone, Debug)]
pub struct ModelCatalog {
    listed: Vec<String>,
    any: bool,
}

impl Default for ModelCatalog {
    fn default() -> Self {
        Self::echo_only()
    }
}

impl ModelCatalog {
    /// No provider: only `echo`.
    pub fn echo_only() -> Self {
        Self {
            listed: vec![domain::agent::ECHO_MODEL.to_owned()],
            any: false,
        }
    }

    /// A provider: `echo` and the names in `allowed`, or any name without a list.
    pub fn with_provider(allowed: Option<Vec<String>>) -> Self {
        let mut listed = vec![domain::agent::ECHO_MODEL.to_owned()];
        let any = allowed.is_none();
        listed.extend(allowed.into_iter().flatten());
        Self { listed, any }
    }

    /// Whether `model` is offered.
    pub fn offers(&self, model: &str) -> bool {
        self.any || self.listed.iter().any(|name| name == model.trim())
    }

    /// The names offered (when the catalog is a list).
    pub fn listed(&self) -> &[String] {
        &self.listed
    }
}
