//! Bounded, trimmed free text (names, reasons), shared by several aggregates.

/// Why a piece of free text was refused; each aggregate maps it to its own error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextError {
    /// Nothing left after trimming.
    Empty,
    /// More characters than allowed after trimming.
    TooLong,
}

/// Trims `input` and checks it holds at most `max_chars` characters (and, unless
/// `allow_empty`, at least one), so names never carry stray whitespace into events.
pub(crate) fn trimmed(input: &str, max_chars: usize, allow_empty: bool) -> Result<String, TextError> {
    let text = input.trim();
    if text.is_empty() && !allow_empty {
        return Err(TextError::Empty);
    }
    if text.chars().count() > max_chars {
        return Err(TextError::TooLong);
    }
    Ok(text.to_owned())
}
