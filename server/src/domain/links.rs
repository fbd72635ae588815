//! URL extraction for the links archive (linkify, not a hand-written regex).

use linkify::{LinkFinder, LinkKind};

/// At most this many links are archived per message.
pub const MAX_LINKS: usize = 20;
/// Longer URLs are not archived (they are still in the message text).
pub const MAX_URL_LEN: usize = 2048;

/// Distinct http(s) URLs and bare domains with a scheme-less `www.` in order of
/// appearance. E-mail addresses are not links.
pub fn extract(text: &str) -> Vec<String> {
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]);
    let mut out: Vec<String> = Vec::new();
    for link in finder.links(text) {
        let url = link.as_str();
        if url.len() > MAX_URL_LEN {
            continue;
        }
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            continue;
        }
        if !out.iter().any(|u| u == url) {
            out.push(url.to_string());
        }
        if out.len() == MAX_LINKS {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_http_urls_once_in_order() {
        let found = extract(
            "see https://example.com/a?b=1, and (http://rust-lang.org) again https://example.com/a?b=1",
        );
        assert_eq!(
            found,
            vec!["https://example.com/a?b=1", "http://rust-lang.org"]
        );
    }

    #[test]
    fn ignores_emails_and_other_schemes() {
        assert!(extract("mail bob@example.com or ftp://x.org or javascript:alert(1)").is_empty());
    }

    #[test]
    fn caps_the_number_of_links() {
        let text: String = (0..50).map(|i| format!("https://e{i}.com ")).collect();
        assert_eq!(extract(&text).len(), MAX_LINKS);
    }
}
