//! Which web origins may call the API from a browser (`AGENTRY_CORS_ORIGINS`), read once at
//! start so a mistyped origin stops the process instead of silently blocking a frontend.

use std::fmt;

use url::Url;

/// The web origins allowed to call the API from a browser: to read its answers (CORS) and to
/// open streams (WebSocket upgrades).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BrowserOrigins {
    /// Unset: no CORS headers at all. Server-to-server clients need none.
    #[default]
    None,
    /// `*`: every origin, for development only (any website may call the API in a user's
    /// name with a token it holds).
    Any,
    /// These exact origins (`scheme://host[:port]`, as browsers send them in `Origin`).
    Listed(Vec<String>),
}

/// Why `AGENTRY_CORS_ORIGINS` was refused: names the entry and, when there is one, the way to
/// write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOrigin {
    /// The entry as configured.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "invalid AGENTRY_CORS_ORIGINS entry {:?}: {}",
            self.entry, self.reason
        )
    }
}

impl std::error::Error for InvalidOrigin {}

impl BrowserOrigins {
    /// Reads the setting: unset or blank is [`None`](Self::None), `*` alone is
    /// [`Any`](Self::Any), anything else a comma-separated list of exact origins (blank entries,
    /// as a trailing comma leaves, are skipped). An entry that is not exactly an origin as a
    /// browser writes it (a path, a trailing slash, upper case, a default port, credentials,
    /// another scheme than http or https) is refused: it could never match.
    pub fn parse(setting: Option<&str>) -> Result<Self, InvalidOrigin> {
        let entries: Vec<&str> = setting
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        if entries.is_empty() {
            return Ok(Self::None);
        }
        if entries == ["*"] {
            return Ok(Self::Any);
        }
        let origins = entries
            .into_iter()
            .map(exact_origin)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Listed(origins))
    }

    /// Whether a browser page on `origin` (an `Origin` header's value) may call the API.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::None => false,
            Self::Any => true,
            Self::Listed(origins) => origins.iter().any(|allowed| allowed == origin),
        }
    }
}

/// `entry` if it is an origin exactly as browsers serialize it.
fn exact_origin(entry: &str) -> Result<String, InvalidOrigin> {
    let refuse = |reason: String| InvalidOrigin {
        entry: entry.to_owned(),
        reason,
    };
    if entry == "*" {
        return Err(refuse(
            "`*` allows every origin and cannot be combined with others".to_owned(),
        ));
    }
    let url = Url::parse(entry).map_err(|error| refuse(format!("not a URL ({error})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("an origin's scheme is http or https".to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("an origin has no user name or password".to_owned()));
    }
    let serialized = url.origin().ascii_serialization();
    if serialized != entry {
        return Err(refuse(format!(
            "browsers send this origin as {serialized:?} (no path, no trailing slash, lower case, no default port)"
        )));
    }
    Ok(serialized)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::BrowserOrigins;

    #[test]
    fn unset_and_blank_allow_nothing() {
        assert_eq!(BrowserOrigins::parse(None), Ok(BrowserOrigins::None));
        assert_eq!(BrowserOrigins::parse(Some(" ")), Ok(BrowserOrigins::None));
        assert!(!BrowserOrigins::None.allows("http://localhost:3000"));
    }

    #[test]
    fn a_star_alone_allows_every_origin() {
        let origins = BrowserOrigins::parse(Some("*")).unwrap();
        assert_eq!(origins, BrowserOrigins::Any);
        assert!(origins.allows("https://anything.example"));
    }

    #[test]
    fn a_list_allows_exactly_its_origins() {
        let origins = BrowserOrigins::parse(Some("https://app.example.com, http://localhost:3000,")).unwrap();
        assert!(origins.allows("https://app.example.com"));
        assert!(origins.allows("http://localhost:3000"));
        assert!(!origins.allows("http://localhost:3001"));
        assert!(!origins.allows("https://app.example.com.evil.example"));
        assert!(!origins.allows("null"));
    }

    #[test]
    fn entries_no_browser_sends_are_refused_with_the_way_to_write_them() {
        for (entry, hint) in [
            ("https://app.example.com/", "\"https://app.example.com\""),
            ("https://App.Example.com", "\"https://app.example.com\""),
            ("https://app.example.com:443", "\"https://app.example.com\""),
            ("https://app.example.com/path", "\"https://app.example.com\""),
            ("app.example.com", "not a URL"),
            ("ftp://app.example.com", "http or https"),
            ("https://user:pw@app.example.com", "user name"),
            ("https://a.example, *", "cannot be combined"),
        ] {
            let error = BrowserOrigins::parse(Some(entry)).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(hint), "{entry}: {message}");
            assert!(!message.contains('\n'), "{entry}: {message}");
        }
    }
}
