//! What the HTTP APIs beside a registry (Docker Hub's, Harbor's) share: the
//! base URL a workflow gives for one, checked, and a client that never
//! follows a redirect (it would carry the login elsewhere, or turn a
//! `DELETE` into a `GET`). Each request sets its own time bound.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::{Client, Url, redirect};

/// `api` as a base URL, or why it isn't one. Plain `http` would send the
/// login and token in the clear, so it is for a loopback host only (a
/// local server in tests).
pub fn base_url(api: &str) -> Result<Url, String> {
    let parsed = Url::parse(api.trim()).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
        return Err("not an http or https URL".to_owned());
    }
    if parsed.query().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a base URL has no query or credentials".to_owned());
    }
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        return Err(
            "plain http sends the login in the clear: use https; http is for a loopback host only, 127.0.0.0/8, ::1 or localhost"
                .to_owned(),
        );
    }
    Ok(parsed)
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // An IPv6 host comes in brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

const HIDDEN: &str = "(not shown: it may hold a login)";

/// `api` as an error may quote it: without what a URL's user, password
/// or query could carry.
pub fn shown(api: &str) -> String {
    match Url::parse(api.trim()) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            // `x:secret@host` parses with the login in its path.
            match url.as_str().contains('@') {
                true => HIDDEN.to_owned(),
                false => url.to_string(),
            }
        }
        Err(_) if api.contains('@') || api.contains('?') => {
            "(not shown: it may hold a login)".to_owned()
        }
        Err(_) => api.to_owned(),
    }
}

pub fn client() -> reqwest::Result<Client> {
    Client::builder()
        .user_agent(concat!("registry-action/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .redirect(redirect::Policy::none())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_https_or_loopback_http_base_is_a_base_url() {
        assert_eq!(
            base_url(" https://harbor.example.com ").map(|u| u.to_string()),
            Ok("https://harbor.example.com/".to_owned())
        );
        for loopback in [
            "http://127.0.0.1:8080/",
            "http://127.8.9.10/",
            "http://[::1]:9/",
            "http://localhost:8080/",
            "http://LocalHost/",
        ] {
            assert!(base_url(loopback).is_ok(), "{loopback}");
        }
        for bad in [
            "harbor.example.com",
            "ftp://harbor.example.com",
            "mailto:ops@example.com",
            "https://harbor.example.com/?x=1",
            "https://bot@harbor.example.com",
            "https://:secret@harbor.example.com",
            "http://harbor.example.com",
            "http://10.0.0.7:8080",
            "http://128.0.0.1",
            "http://[::2]",
            "http://localhost.example.com",
            "http://[::ffff:7f00:1]",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_url_is_shown_without_its_login_or_query() {
        assert_eq!(
            shown("https://robot:s3cret@harbor.example.com/?token=t0k"),
            "https://harbor.example.com/"
        );
        assert_eq!(shown("not a url"), "not a url");
        assert!(!shown("x:s3cret@y").contains("s3cret"));
    }
}
