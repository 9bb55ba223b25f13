//! `data:<media type>;base64,<bytes>` URLs: how an embedded image travels in a request line,
//! written, read back (by the estimate and the simulator), and shortened for display.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The URL of `bytes` of media type `mime_type`.
#[must_use]
pub fn data_url(mime_type: &str, bytes: &[u8]) -> String {
    let mut url = String::with_capacity(mime_type.len() + 13 + bytes.len().div_ceil(3) * 4);
    url.push_str("data:");
    url.push_str(mime_type);
    url.push_str(";base64,");
    STANDARD.encode_string(bytes, &mut url);
    url
}

/// The length of [`data_url`] for `bytes_length` bytes of media type `mime_type`.
#[must_use]
pub fn data_url_length(mime_type: &str, bytes_length: usize) -> usize {
    "data:;base64,".len() + mime_type.len() + bytes_length.div_ceil(3) * 4
}

/// A data URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedDataUrl {
    pub mime_type: String,
    pub bytes: Vec<u8>,
}

/// Whether `url` is a data URL at all (then [`decode_data_url`] says whether it is a good one).
#[must_use]
pub fn is_data_url(url: &str) -> bool {
    url.get(..5)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("data:"))
}

/// Reads a base64 data URL.
///
/// # Errors
/// When it is not `data:<type>;base64,<payload>` or the payload is not base64; the message says
/// which.
pub fn decode_data_url(url: &str) -> Result<DecodedDataUrl, String> {
    if !is_data_url(url) {
        return Err("it does not start with `data:`".to_owned());
    }
    let rest = &url[5..];
    let (header, payload) = rest
        .split_once(',')
        .ok_or("it has no `,` between its media type and its data")?;
    let mime_type = header
        .len()
        .checked_sub(";base64".len())
        .filter(|&start| {
            header
                .get(start..)
                .is_some_and(|marker| marker.eq_ignore_ascii_case(";base64"))
        })
        .map(|start| &header[..start])
        .ok_or("its data is not marked `;base64` (only base64 data URLs are accepted)")?;
    // Base64 wrapped over several lines (as `base64` writes it) is the same data.
    let payload: Vec<u8> = payload
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    let bytes = STANDARD
        .decode(&payload)
        .map_err(|error| format!("its base64 data does not decode ({error})"))?;
    Ok(DecodedDataUrl {
        mime_type: mime_type.to_ascii_lowercase(),
        bytes,
    })
}

/// `data:image/png;base64,iVBORw0KGgo…` with the size of the data: a line fit to read.
#[must_use]
pub fn abbreviated(url: &str) -> String {
    match url.split_once(',') {
        Some((header, payload)) if is_data_url(url) && payload.len() > 16 => {
            let bytes = payload.len() / 4 * 3;
            format!(
                "{header},{}…({})",
                &payload[..12],
                crate::readable_number::readable_bytes(bytes as u64)
            )
        }
        _ => url.to_owned(),
    }
}

/// Shortens every data URL in a JSON value (a request line to show).
pub fn abbreviate_data_urls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if is_data_url(text) => *text = abbreviated(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(abbreviate_data_urls),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(abbreviate_data_urls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_round_trip_and_shorten_for_display() {
        let bytes: Vec<u8> = (0..=255).collect();
        let url = data_url("image/png", &bytes);
        assert_eq!(url.len(), data_url_length("image/png", bytes.len()));
        assert_eq!(
            decode_data_url(&url).unwrap(),
            DecodedDataUrl {
                mime_type: "image/png".to_owned(),
                bytes
            }
        );
        assert!(abbreviated(&url).starts_with("data:image/png;base64,AAECAwQFBgcI…("));
        assert!(abbreviated(&url).len() < 60);
        assert_eq!(abbreviated("https://x/y.png"), "https://x/y.png");
        assert!(decode_data_url("data:image/png;base64,@@@").is_err());
        assert_eq!(
            decode_data_url("DATA:IMAGE/PNG;BASE64,AAEC\nAwQF\n").unwrap(),
            DecodedDataUrl {
                mime_type: "image/png".to_owned(),
                bytes: vec![0, 1, 2, 3, 4, 5]
            }
        );
        assert!(decode_data_url("data:image/png,abc").is_err());
        assert!(decode_data_url("https://x").is_err());
    }
}
