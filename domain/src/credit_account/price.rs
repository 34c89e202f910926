//! What a model call is priced at, recorded on its hold, so a call that ends without the
//! provider's count (cancelled while it streamed) can still be charged for what it produced.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Characters per token when Agentry counts tokens itself (the provider reported none, or the
/// call was cancelled before it could): OpenAI's rule of thumb for English, rounded up.
pub const CHARS_PER_TOKEN: u64 = 4;

/// The tokens counted for `chars` characters of text (see [`CHARS_PER_TOKEN`]).
pub fn counted_tokens(chars: u64) -> u64 {
    chars.div_ceil(CHARS_PER_TOKEN)
}

/// What tokens cost, in credits per million, summed and rounded up to a whole credit: the one
/// rule every price in Agentry follows (the runtime's price table and a cancelled call's
/// charge alike, so the two never disagree by a rounding).
pub fn credits_for(
    prompt_tokens: u64,
    prompt_per_million: u64,
    completion_tokens: u64,
    completion_per_million: u64,
) -> u64 {
    let micro = u128::from(prompt_tokens) * u128::from(prompt_per_million)
        + u128::from(completion_tokens) * u128::from(completion_per_million);
    u64::try_from(micro.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// A model call's price, as its hold records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallPrice {
    /// The prompt's tokens, counted from the request ([`CHARS_PER_TOKEN`]).
    pub prompt_tokens: u64,
    /// Credits per million prompt tokens.
    pub prompt_per_million: u64,
    /// Credits per million completion tokens.
    pub completion_per_million: u64,
    /// The answer's limit, sent with the request: no more completion tokens are charged.
    pub max_output_tokens: u64,
}

impl CallPrice {
    /// What the call costs had it answered `completion_tokens` (at most its limit).
    pub fn credits(&self, completion_tokens: u64) -> u64 {
        credits_for(
            self.prompt_tokens,
            self.prompt_per_million,
            completion_tokens.min(self.max_output_tokens),
            self.completion_per_million,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_costs_its_tokens_rounded_up_and_never_more_than_its_limit() {
        let price = CallPrice {
            prompt_tokens: 1_000,
            prompt_per_million: 1_000_000,
            completion_per_million: 4_000_000,
            max_output_tokens: 500,
        };
        assert_eq!(price.credits(0), 1_000);
        assert_eq!(price.credits(250), 2_000);
        assert_eq!(price.credits(10_000), 3_000, "capped at the answer's limit");
        assert_eq!(
            credits_for(3, 1_000, 2, 1_000),
            1,
            "a fraction of a credit rounds up"
        );
        assert_eq!(counted_tokens(0), 0);
        assert_eq!(counted_tokens(9), 3);
    }
}
