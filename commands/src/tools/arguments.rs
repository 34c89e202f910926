//! Checking the arguments a model sends for a tool against the tool's schema, with each
//! schema compiled once per (tool id, version) and kept.
//!
//! Compiling a JSON Schema costs far more than validating against it, and a tool's schema
//! changes only with its version, so the runtime keeps one [`ArgumentValidators`] per process
//! and calls [`ArgumentValidators::check`] for every tool call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use uuid::Uuid;

use super::ResolvedTool;

/// Compiled validators kept when none is given.
const DEFAULT_CAPACITY: usize = 1024;
/// Schema violations named in one message to the model.
const MAX_REPORTED: usize = 5;

/// Why the arguments were not accepted, worded for the model (which may correct itself and
/// call again): its `Display` text is the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    /// The text is not JSON.
    #[error("the arguments are not valid JSON ({0}); send one JSON object")]
    NotJson(String),
    /// The JSON breaks the tool's schema; each violation with where it is.
    #[error("the arguments do not match the tool's parameters schema: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The tool's own schema does not compile (it was accepted when the tool was saved, so a
    /// validator upgrade changed its mind): the tool cannot be called until it is fixed.
    #[error("the tool's parameters schema cannot be used ({0}); the tool cannot be called")]
    UnusableSchema(String),
}

/// Compiled argument validators keyed by (tool id, version). Share one per process.
pub struct ArgumentValidators {
    compiled: Mutex<HashMap<(Uuid, u32), Arc<jsonschema::Validator>>>,
    capacity: usize,
}

impl Default for ArgumentValidators {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for ArgumentValidators {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ArgumentValidators")
            .field("cached", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ArgumentValidators {
    /// A cache holding at most `capacity` (at least 1) compiled validators.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            compiled: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The model's `arguments` text for `tool` as a JSON value when it is JSON and matches the
    /// tool's schema; otherwise the message for the model. Empty text (what some models send
    /// for a tool without parameters) counts as `{}`.
    pub fn check(&self, tool: &ResolvedTool, arguments: &str) -> Result<Value, ArgumentError> {
        self.check_against(tool.id, tool.version, &tool.parameters, arguments)
    }

    /// [`check`](Self::check) with the tool's id, version and schema given separately.
    pub fn check_against(
        &self,
        id: Uuid,
        version: u32,
        schema: &Value,
        arguments: &str,
    ) -> Result<Value, ArgumentError> {
        let text = if arguments.trim().is_empty() {
            "{}"
        } else {
            arguments
        };
        let value: Value = serde_json::from_str(text).map_err(|e| ArgumentError::NotJson(e.to_string()))?;
        let validator = self.validator(id, version, schema)?;
        let violations: Vec<String> = validator
            .iter_errors(&value)
            .take(MAX_REPORTED)
            .map(|error| {
                let at = error.instance_path().to_string();
                let at = if at.is_empty() { "/".to_owned() } else { at };
                format!("at {at}: {error}")
            })
            .collect();
        if violations.is_empty() {
            Ok(value)
        } else {
            Err(ArgumentError::Invalid(violations))
        }
    }

    /// How many compiled validators are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn validator(
        &self,
        id: Uuid,
        version: u32,
        schema: &Value,
    ) -> Result<Arc<jsonschema::Validator>, ArgumentError> {
        if let Some(found) = self.lock().get(&(id, version)) {
            return Ok(Arc::clone(found));
        }
        // Compiled outside the lock: two callers racing compile twice, and nobody waits.
        let compiled = Arc::new(
            jsonschema::validator_for(schema).map_err(|e| ArgumentError::UnusableSchema(e.to_string()))?,
        );
        let mut cache = self.lock();
        if cache.len() >= self.capacity && !cache.contains_key(&(id, version)) {
            // Any one goes: a miss costs one compilation.
            if let Some(evicted) = cache.keys().next().copied() {
                cache.remove(&evicted);
            }
        }
        Ok(Arc::clone(cache.entry((id, version)).or_insert(compiled)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Uuid, u32), Arc<jsonschema::Validator>>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "city": { "type": "string", "minLength": 1 },
                "days": { "type": "integer", "minimum": 1, "maximum": 7 }
            },
            "required": ["city"],
            "additionalProperties": false
        })
    }

    #[test]
    fn matching_arguments_come_back_parsed() {
        let validators = ArgumentValidators::default();
        let id = Uuid::from_u128(1);
        let value = validators
            .check_against(id, 1, &schema(), r#"{"city": "Oslo", "days": 3}"#)
            .unwrap();
        assert_eq!(value, json!({"city": "Oslo", "days": 3}));
    }

    #[test]
    fn text_that_is_not_json_is_told_to_the_model() {
        let validators = ArgumentValidators::default();
        let error = validators
            .check_against(Uuid::from_u128(1), 1, &schema(), r#"{"city": "Oslo""#)
            .unwrap_err();
        assert!(matches!(error, ArgumentError::NotJson(_)), "{error:?}");
        assert!(
            error.to_string().starts_with("the arguments are not valid JSON"),
            "{error}"
        );
    }

    #[test]
    fn each_violation_is_named_with_where_it_is() {
        let validators = ArgumentValidators::default();
        let error = validators
            .check_against(Uuid::from_u128(1), 1, &schema(), r#"{"days": 9, "extra": true}"#)
            .unwrap_err();
        let ArgumentError::Invalid(violations) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(violations.len(), 3, "{violations:?}");
        let message = error.to_string();
        assert!(message.contains("city"), "{message}");
        assert!(message.contains("at /days"), "{message}");
        assert!(message.contains("extra"), "{message}");
    }

    #[test]
    fn empty_arguments_count_as_an_empty_object() {
        let validators = ArgumentValidators::default();
        let open = json!({ "type": "object" });
        assert_eq!(
            validators
                .check_against(Uuid::from_u128(1), 1, &open, "  ")
                .unwrap(),
            json!({})
        );
        assert!(matches!(
            validators.check_against(Uuid::from_u128(2), 1, &schema(), ""),
            Err(ArgumentError::Invalid(_))
        ));
    }

    #[test]
    fn a_validator_is_compiled_once_per_tool_version() {
        let validators = ArgumentValidators::default();
        let id = Uuid::from_u128(1);
        validators
            .check_against(id, 1, &schema(), r#"{"city": "Oslo"}"#)
            .unwrap();
        // The same (id, version) uses the compiled validator, whatever schema is passed.
        let looser = json!({ "type": "object" });
        assert!(validators.check_against(id, 1, &looser, "{}").is_err());
        // A new version compiles its own.
        assert!(validators.check_against(id, 2, &looser, "{}").is_ok());
        assert_eq!(validators.len(), 2);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let validators = ArgumentValidators::with_capacity(2);
        for version in 1..=5 {
            validators
                .check_against(Uuid::from_u128(1), version, &schema(), r#"{"city": "x"}"#)
                .unwrap();
        }
        assert_eq!(validators.len(), 2);
    }

    #[test]
    fn a_schema_that_does_not_compile_makes_the_tool_uncallable() {
        let validators = ArgumentValidators::default();
        let broken = json!({ "type": "object", "properties": { "x": { "pattern": "([" } } });
        let error = validators
            .check_against(Uuid::from_u128(1), 1, &broken, "{}")
            .unwrap_err();
        assert!(matches!(error, ArgumentError::UnusableSchema(_)), "{error:?}");
        assert!(validators.is_empty());
    }
}
