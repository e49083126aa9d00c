//! The Debian mirrors this machine's apt uses, read from its source lists: the one-line format
//! of `/etc/apt/sources.list` and the deb822 `.sources` files in `/etc/apt/sources.list.d`.

use super::DEFAULT_KEYRING;
use crate::error::{XResult, failed};
use std::path::Path;

/// One `deb` source: where, which suite, which key signs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Source {
    pub(super) uri: String,
    pub(super) suite: String,
    pub(super) signed_by: Option<String>,
}

/// The mirror of the release and the one of its security suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mirrors {
    pub(super) main: Source,
    pub(super) security: Option<Source>,
}

impl Mirrors {
    /// Picks the first release mirror and the first security mirror among `sources`
    /// (suites `X` and `X-security`; `X-updates` and others are not needed).
    pub(super) fn pick(sources: &[Source]) -> Option<Self> {
        let main = sources.iter().find(|s| !s.suite.contains('-'))?.clone();
        let security = sources
            .iter()
            .find(|s| s.suite.ends_with("-security"))
            .cloned();
        Some(Self { main, security })
    }

    /// The private `sources.list` for `suite` (and `suite-security`), arm64, main only.
    pub(super) fn source_list(&self, suite: &str) -> String {
        let line = |s: &Source, suite: String| {
            let key = s.signed_by.as_deref().unwrap_or(DEFAULT_KEYRING);
            format!("deb [arch=arm64 signed-by={key}] {} {suite} main\n", s.uri)
        };
        let mut list = line(&self.main, suite.into());
        if let Some(security) = &self.security {
            list += &line(security, format!("{suite}-security"));
        }
        list
    }
}

impl Mirrors {
    /// The private `sources.list` of the release's backports suite (`suite-backports`) for
    /// `arch`, main only: the release mirror carries it.
    pub(crate) fn backports_list(&self, arch: &str, suite: &str) -> String {
        let s = &self.main;
        let key = s.signed_by.as_deref().unwrap_or(DEFAULT_KEYRING);
        format!(
            "deb [arch={arch} signed-by={key}] {} {suite}-backports main\n",
            s.uri
        )
    }
}

/// The mirrors of this machine's apt sources.
pub(crate) fn system_mirrors() -> XResult<Mirrors> {
    let mut sources = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        sources.extend(parse_one_line(&text));
    }
    let parts = Path::new("/etc/apt/sources.list.d");
    let mut files: Vec<_> = std::fs::read_dir(parts)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        match file.extension().and_then(|x| x.to_str()) {
            Some("sources") => sources.extend(parse_deb822(&text)),
            Some("list") => sources.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    let debian = |s: &&Source| s.uri.contains("debian");
    let debian: Vec<Source> = sources.iter().filter(debian).cloned().collect();
    Mirrors::pick(&debian).ok_or_else(|| {
        failed("no Debian mirror in /etc/apt/sources.list(.d): cannot fetch the guest kernel")
    })
}

/// `deb [options] uri suite components...` lines.
pub(super) fn parse_one_line(text: &str) -> Vec<Source> {
    text.lines().filter_map(one_line).collect()
}

fn one_line(line: &str) -> Option<Source> {
    let rest = line.trim().strip_prefix("deb ")?.trim_start();
    let (options, rest) = match rest.strip_prefix('[') {
        Some(inner) => inner.split_once(']')?,
        None => ("", rest),
    };
    let mut words = rest.split_whitespace();
    let (uri, suite) = (words.next()?, words.next()?);
    let signed_by = options
        .split_whitespace()
        .find_map(|o| o.strip_prefix("signed-by="))
        .map(String::from);
    Some(Source {
        uri: uri.into(),
        suite: suite.into(),
        signed_by,
    })
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Signed-By:`, `Enabled:`).
pub(super) fn parse_deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        if !is_deb || field("Enabled") == Some("no") {
            continue;
        }
        let signed_by = field("Signed-By")
            .filter(|k| k.starts_with('/'))
            .map(String::from);
        for uri in field("URIs").unwrap_or("").split_whitespace() {
            for suite in field("Suites").unwrap_or("").split_whitespace() {
                sources.push(Source {
                    uri: uri.into(),
                    suite: suite.into(),
                    signed_by: signed_by.clone(),
                });
            }
        }
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
";

    #[test]
    fn deb822_stanzas_give_one_source_per_uri_and_suite() {
        let sources = parse_deb822(DEB822);
        let suites: Vec<&str> = sources.iter().map(|s| s.suite.as_str()).collect();
        assert_eq!(
            suites,
            ["bookworm", "bookworm-updates", "bookworm-security"]
        );
        assert_eq!(sources[2].signed_by, None);
    }

    #[test]
    fn one_line_sources_with_options_are_read() {
        let text = "# deb http://old.example/debian buster main\n\
            deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        let sources = parse_one_line(text);
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(sources[0].uri, "http://mirror.example/debian");
    }

    #[test]
    fn the_private_list_names_the_release_and_its_security_suite_for_arm64() {
        let mirrors = Mirrors::pick(&parse_deb822(DEB822)).unwrap();
        let list = mirrors.source_list("bookworm");
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("deb [arch=arm64 signed-by=/usr/share/keyrings/"));
        assert!(lines[0].ends_with("http://mirror.example/debian bookworm main"));
        assert!(lines[1].ends_with("/debian-security bookworm-security main"));
    }

    #[test]
    fn the_backports_list_names_the_release_mirror_for_the_host() {
        let mirrors = Mirrors::pick(&parse_deb822(DEB822)).unwrap();
        assert_eq!(
            mirrors.backports_list("amd64", "bookworm"),
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://mirror.example/debian bookworm-backports main\n"
        );
    }
}
