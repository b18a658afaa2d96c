//! Multipart uploads (`multipart/form-data`): OpenAI's audio transcriptions and translations
//! name their model in a form field, next to the audio file. The form is read with `multer` to
//! find the model, and, when the model sent upstream differs from the client's, written again
//! with only that field's value changed: every other part keeps its name, file name, content
//! type and bytes.

use bytes::Bytes;
use multer::Multipart;

/// One part of a form, as read.
struct Part {
    name: Option<String>,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

/// A form read whole (the body is already in memory, under the request size cap).
pub struct Form {
    boundary: String,
    parts: Vec<Part>,
}

impl Form {
    /// Reads `body` as the form its `content_type` names; the error says what is wrong in words
    /// for the client.
    pub async fn read(content_type: &str, body: &Bytes) -> Result<Form, String> {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| "the body must be multipart/form-data with a boundary".to_string())?;
        let chunk = body.clone();
        let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(chunk) });
        let mut multipart = Multipart::new(stream, boundary.clone());
        let mut parts = Vec::new();
        loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|e| format!("the multipart form cannot be read: {e}"))?;
            let Some(field) = field else { break };
            let name = field.name().map(str::to_string);
            let file_name = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(|m| m.to_string());
            let data = field
                .bytes()
                .await
                .map_err(|e| format!("the multipart form cannot be read: {e}"))?;
            parts.push(Part {
                name,
                file_name,
                content_type,
                data,
            });
        }
        Ok(Form { boundary, parts })
    }

    /// The bytes of the form's files.
    pub fn file_bytes(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| p.file_name.is_some())
            .map(|p| p.data.len())
            .sum()
    }

    /// How many parts are named `name` (files included).
    pub fn count(&self, name: &str) -> usize {
        self.parts.iter().filter(|p| p.name.as_deref() == Some(name)).count()
    }

    /// The value of the text field `name`, if the form has one.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.name.as_deref() == Some(name) && p.file_name.is_none())
            .and_then(|p| std::str::from_utf8(&p.data).ok())
    }

    /// The form written again with the text field `name` set to `value`, and its content type.
    pub fn with_text(&self, name: &str, value: &str) -> (Vec<u8>, String) {
        let mut out = Vec::with_capacity(self.parts.iter().map(|p| p.data.len() + 128).sum());
        for part in &self.parts {
            out.extend_from_slice(b"--");
            out.extend_from_slice(self.boundary.as_bytes());
            out.extend_from_slice(b"\r\nContent-Disposition: form-data");
            if let Some(field) = &part.name {
                out.extend_from_slice(format!("; name=\"{}\"", escape(field)).as_bytes());
            }
            if let Some(file) = &part.file_name {
                out.extend_from_slice(format!("; filename=\"{}\"", escape(file)).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            if let Some(content_type) = &part.content_type {
                out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            if part.name.as_deref() == Some(name) && part.file_name.is_none() {
                out.extend_from_slice(value.as_bytes());
            } else {
                out.extend_from_slice(&part.data);
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        (out, format!("multipart/form-data; boundary=\"{}\"", self.boundary))
    }
}

/// A quoted-string value with its quotes, backslashes and line breaks escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nopenai/whisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\x01binary\r\n--XyZ\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nno\r\n--XyZ--\r\n";

    #[tokio::test]
    async fn reads_the_model_and_rewrites_only_it() {
        let form = Form::read(
            "multipart/form-data; boundary=XyZ",
            &Bytes::from_static(BODY.as_bytes()),
        )
        .await
        .expect("form");
        assert_eq!(form.text("model"), Some("openai/whisper-1"));
        assert_eq!(form.text("file"), None, "a file is not a text field");
        let (body, content_type) = form.with_text("model", "whisper-1");
        assert_eq!(content_type, "multipart/form-data; boundary=\"XyZ\"");
        let again = Form::read(&content_type, &Bytes::from(body)).await.expect("form");
        assert_eq!(again.text("model"), Some("whisper-1"));
        assert_eq!(again.text("language"), Some("no"));
        let file = again
            .parts
            .iter()
            .find(|p| p.name.as_deref() == Some("file"))
            .expect("file");
        assert_eq!(&file.data[..], b"RIFF\x00\x01binary");
        assert_eq!(file.file_name.as_deref(), Some("a b.wav"));
        assert_eq!(file.content_type.as_deref(), Some("audio/wav"));
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_form() {
        assert!(
            Form::read("application/json", &Bytes::from_static(b"{}"))
                .await
                .is_err()
        );
        let cut = Bytes::from_static(&BODY.as_bytes()[..40]);
        assert!(Form::read("multipart/form-data; boundary=XyZ", &cut).await.is_err());
    }
}
