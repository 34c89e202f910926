//! `docs/error-codes.md`, generated from [`ErrorCode`] so that the page cannot drift from the
//! codes the service emits. The test below fails when the file is out of date; to rewrite it:
//! `cargo test -p api --lib write_error_codes_page -- --ignored`.

use super::ErrorCode;

/// The page's text: every code with its meaning, in the enum's order.
pub fn error_codes_page() -> String {
    let mut page = String::from(
        "# Error codes\n\n\
         <!-- Generated from `ErrorCode` (api/src/http/codes.rs); do not edit by hand. Rewrite with\n     \
         `cargo test -p api --lib write_error_codes_page -- --ignored`. -->\n\n\
         Every error answer is `application/problem+json` (RFC 9457) with a stable `code` for\n\
         programs; the `detail` beside it is for people. The OpenAPI document lists the same codes\n\
         as the `ErrorCode` enum, and each operation the statuses it can answer.\n\n\
         | code | meaning |\n| --- | --- |\n",
    );
    for code in ErrorCode::ALL {
        let meaning = code.meaning().replace('|', "\\|");
        page.push_str(&format!("| `{}` | {meaning} |\n", code.as_str()));
    }
    page
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::error_codes_page;

    fn page_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/error-codes.md")
    }

    #[test]
    fn the_error_codes_page_is_up_to_date() {
        let written = std::fs::read_to_string(page_path()).unwrap_or_default();
        let expected = error_codes_page();
        assert!(
            written == expected,
            "docs/error-codes.md is out of date; rewrite it with \
             `cargo test -p api --lib write_error_codes_page -- --ignored`. Expected:\n{expected}"
        );
    }

    #[test]
    #[ignore = "writes docs/error-codes.md"]
    fn write_error_codes_page() -> std::io::Result<()> {
        std::fs::write(page_path(), error_codes_page())
    }
}
