//! Credits per model call, from a price table.

use std::collections::HashMap;

use domain::credit_account::credits_for;
use serde::Deserialize;

/// A model's price, in credits per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Price {
    /// Per million prompt tokens.
    pub prompt: u64,
    /// Per million completion tokens.
    pub completion: u64,
}

/// Prices per model, and one for models the table does not name.
///
/// Defaults: `echo` 1,000 credits per million tokens either way (a development model is not
/// free, so billing can be tried with it), every other model 1,000,000 per million prompt and
/// 4,000,000 per million completion tokens. A call costs the sum, rounded up to a whole credit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceTable {
    models: HashMap<String, Price>,
    default: Price,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self {
            models: HashMap::from([(
                "echo".to_owned(),
                Price {
                    prompt: 1_000,
                    completion: 1_000,
                },
            )]),
            default: Price {
                prompt: 1_000_000,
                completion: 4_000_000,
            },
        }
    }
}

impl PriceTable {
    /// The defaults with `overrides` (a JSON object from model name, or `"default"`, to
    /// `{"prompt": n, "completion": n}`) applied.
    pub fn with_overrides(overrides: &str) -> Result<Self, serde_json::Error> {
        let mut table = Self::default();
        let given: HashMap<String, Price> = serde_json::from_str(overrides)?;
        for (model, price) in given {
            if model == "default" {
                table.default = price;
            } else {
                table.models.insert(model, price);
            }
        }
        Ok(table)
    }

    /// The most a call of `model` can cost: its prompt bound and its answer's limit, at its
    /// price (what the ledger reserves before the call; at least 1, the ledger's smallest hold).
    pub fn worst_case(&self, model: &str, prompt_token_bound: u64, max_output_tokens: u32) -> u64 {
        self.credits(model, prompt_token_bound, u64::from(max_output_tokens))
            .max(1)
    }

    /// What a call of `model` with this usage costs.
    pub fn credits(&self, model: &str, prompt_tokens: u64, completion_tokens: u64) -> u64 {
        let price = self.price(model);
        credits_for(prompt_tokens, price.prompt, completion_tokens, price.completion)
    }

    /// `model`'s price.
    pub fn price(&self, model: &str) -> Price {
        self.models.get(model).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_call_costs_its_tokens_at_the_models_price_rounded_up() {
        let table = PriceTable::default();
        assert_eq!(table.credits("echo", 3, 2), 1);
        assert_eq!(table.credits("echo", 0, 0), 0);
        assert_eq!(table.credits("gpt-x", 1_000, 500), 3_000);
        let table = PriceTable::with_overrides(
            r#"{"gpt-x": {"prompt": 10, "completion": 20}, "default": {"prompt": 1, "completion": 1}}"#,
        )
        .unwrap();
        assert_eq!(table.credits("gpt-x", 1_000_000, 1_000_000), 30);
        assert_eq!(table.credits("other", 2_000_000, 0), 2);
    }
}
