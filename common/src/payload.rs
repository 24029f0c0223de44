//! Showing a message body to a human.

/// Pretty JSON when the payload is JSON (Airfinder events are), else the text, else a hex preview.
pub fn pretty(payload: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) {
        if let Ok(text) = serde_json::to_string_pretty(&value) {
            return text;
        }
    }
    match std::str::from_utf8(payload) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            let preview: Vec<String> = payload
                .iter()
                .take(32)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "<{} bytes, not UTF-8: {}…>",
                payload.len(),
                preview.join(" ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_text_and_binary() {
        assert_eq!(super::pretty(br#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(super::pretty(b"hello"), "hello");
        assert!(super::pretty(&[0xff, 0x00]).starts_with("<2 bytes, not UTF-8: ff 00"));
    }
}
