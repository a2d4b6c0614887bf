//! A secret counts as leaked in any form a log, an output, a file or a
//! header could carry it: as given, in base64 (standard or URL-safe
//! alphabet, at each of the three alignments it can have inside a longer
//! encoding such as Basic auth's `user:password`), or in hex.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

/// A shorter secret's encodings are fragments of a few characters that any
/// text may hold by chance.
const SHORTEST: usize = 8;

/// The strings that give `secret` away, each with the name of its form.
pub fn forms(secret: &str) -> Vec<(&'static str, String)> {
    assert!(
        secret.len() >= SHORTEST,
        "{secret:?} is too short to look for"
    );
    let bytes = secret.as_bytes();
    let mut forms = vec![("as given", secret.to_owned())];
    for offset in 0..3 {
        let fragment = base64_fragment(bytes, offset);
        let url_safe = fragment.replace('+', "-").replace('/', "_");
        forms.push(("in base64", fragment));
        forms.push(("in URL-safe base64", url_safe));
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    forms.push(("in upper-case hex", hex.to_uppercase()));
    forms.push(("in hex", hex));
    forms
}

/// Fails naming `place` and the form when `text` holds `secret` in any of
/// its [`forms`].
pub fn assert_absent(text: &str, secret: &str, place: &str) {
    assert_absent_bytes(text.as_bytes(), secret, place);
}

/// [`assert_absent`] on bytes (an image, a blob).
pub fn assert_absent_bytes(bytes: &[u8], secret: &str, place: &str) {
    for (form, needle) in forms(secret) {
        let needle = needle.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the secret leaked into {place}, {form}"
        );
    }
}

/// The characters every base64 text holding `bytes` at `offset` bytes into
/// a 3-byte group has, whatever comes before and after: a character
/// carries 6 bits, so the first ones mixing the preceding bytes with the
/// secret's and the last one mixing the secret's with what follows are
/// left out.
fn base64_fragment(bytes: &[u8], offset: usize) -> String {
    let mut shifted = vec![0u8; offset];
    shifted.extend_from_slice(bytes);
    let encoded = STANDARD_NO_PAD.encode(&shifted);
    let first = (offset * 8).div_ceil(6);
    let complete = shifted.len() * 8 / 6;
    encoded[first..complete].to_owned()
}

#[test]
fn a_secret_is_found_inside_basic_auth_url_safe_tokens_and_hex_dumps() {
    use base64::engine::general_purpose::URL_SAFE;
    // `?>` encodes to `/` or `+` at every alignment: the two alphabets differ.
    let secret = "s3cret?>?>?>passw0rd";
    for user in ["", "a", "ab", "abc", "octo-user"] {
        let header = STANDARD_NO_PAD.encode(format!("{user}:{secret}"));
        let url_safe = URL_SAFE.encode(format!("{user}:{secret}"));
        assert_ne!(header, url_safe.trim_end_matches('='));
        for (text, what) in [(header, "Basic"), (url_safe, "URL-safe")] {
            let found = forms(secret).iter().any(|(_, f)| text.contains(f.as_str()));
            assert!(found, "{what} `{user}:…` not found in {text}");
        }
    }
    let dump: String = format!("x{secret}y")
        .bytes()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(forms(secret).iter().any(|(_, f)| dump.contains(f.as_str())));
    let unrelated = STANDARD_NO_PAD.encode("octo-user:another-password");
    assert!(
        !forms(secret)
            .iter()
            .any(|(_, f)| unrelated.contains(f.as_str()))
    );
}
